"""Putting an uploaded CSV into the inference folder, only after it passed the contract check.

The bytes are staged outside the folder the sensor watches, validated there with the same
`check_extract` the pipeline uses, then renamed into place in one step, so the sensor never sees a
half-written or invalid file. A refused upload leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import duckdb

from mlops_assets.extracts import ExtractCheck, ExtractError, check_extract

STAGING = ".upload_staging"
"""Beside the inference folder (same file system, so the final rename is atomic)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
MAX_STEM = 100


class UploadRefused(ValueError):
    """The upload was not written; the message says why."""


def safe_file_name(name: str) -> str:
    """The file name an upload is stored under: no folders, only letters, digits, `_` and `-`, `.csv`."""
    base = re.split(r"[\\/]", name.strip())[-1]
    stem, dot, extension = base.rpartition(".")
    if not dot or extension.lower() != "csv":
        raise UploadRefused(f"{base or name!r} is not a .csv file; extracts are CSV files like p5_extrac.csv")
    cleaned = _UNSAFE.sub("_", stem).strip("_-")[:MAX_STEM]
    if not cleaned:
        raise UploadRefused(f"{base!r} has no usable file name; name it like p5_extrac.csv")
    return f"{cleaned}.csv"


def accept_upload(
    content: bytes, name: str, inference_dir: Path, *, overwrite: bool = False, max_invalid_share: float
) -> tuple[Path, ExtractCheck]:
    """Validate `content` against the contract and, if it passes, place it in `inference_dir` as
    `safe_file_name(name)`. An existing extract is replaced only with `overwrite`."""
    target = inference_dir / safe_file_name(name)
    if target.exists() and not overwrite:
        raise UploadRefused(
            f"{target.name} already exists in the inference folder; choose to replace it (it will be scored again) "
            "or rename the file"
        )
    staging = inference_dir.parent / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    handle, staged_name = tempfile.mkstemp(dir=staging, suffix=f"-{target.name}")
    staged = Path(staged_name)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        with duckdb.connect() as con:
            check = check_extract(con, staged, with_target=False, max_invalid_share=max_invalid_share)
        inference_dir.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)
    except ExtractError as exc:
        raise UploadRefused(f"{target.name} was refused and not written: {exc.problem}") from exc
    finally:
        staged.unlink(missing_ok=True)
    return target, check
