"""The inference drop folder: which files are extracts ready to score, and setting bad ones aside."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

from mlops_assets import contract
from mlops_assets.batch_files import looks_like_a_drop

REJECTED = "rejected"


def candidate_files(folder: Path) -> list[Path]:
    """CSV files waiting in `folder` (not in subfolders); hidden, temporary and partial files are not candidates."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if looks_like_a_drop(p)), key=lambda p: contract.extract_sort_key(p.name))


def signature(path: Path) -> str:
    """Name, size and modification time: changes when a file is replaced, stays while it is left alone."""
    stat = path.stat()
    return f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"


def finished_writing(path: Path, settle_seconds: float) -> bool:
    """Whether the file looks complete at first sight: renamed into place (or chmod-ed, touched)
    after its data was last written, or not written for `settle_seconds`.

    Every write sets the inode's change time equal to its modification time, so a later change time
    means nothing has been written since: an atomic drop (written under a hidden name, then renamed)
    is complete the moment it appears. A plain copy in progress keeps the two equal.
    """
    stat = path.stat()
    return stat.st_ctime_ns > stat.st_mtime_ns or time.time() - stat.st_mtime >= settle_seconds


def seconds_until_settled(path: Path, settle_seconds: float) -> float:
    """How long until `path` has not been written for `settle_seconds` if nothing writes it meanwhile
    (0 if it already has; at most `settle_seconds`, also for a modification time in the future)."""
    return min(settle_seconds, max(0.0, settle_seconds - (time.time() - path.stat().st_mtime)))


def reject(path: Path, reason: str) -> Path:
    """Move a bad file to `rejected/` beside it with `<file>.reason.txt`; never overwrite an earlier one."""
    target_dir = path.parent / REJECTED
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    if target.exists():
        stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S%f")
        target = target_dir / f"{path.stem}.{stamp}{path.suffix}"
    shutil.move(str(path), target)
    target.with_name(target.name + ".reason.txt").write_text(
        f"{path.name} was rejected at {dt.datetime.now().isoformat(timespec='seconds')}:\n{reason}\n"
    )
    return target
