"""The training window: which labeled extracts the model learns from, and moving it forward
without deleting anything, as the replaced pipeline did.

The window is every batch file in `data/raw/training/` (see `batch_files`), ordered by the month the
extract holds (`p_fecinformacion` of its first row; the `p<N>` number when that is missing), the
newest `training_window` of them. A retraining run *proposes* a window (the labeled batch in, the
oldest extract out) and loads it; the folders change only when the run completes (`commit`), so a
retraining that fails anywhere leaves `training/` and `archive/` exactly as they were.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import os
from pathlib import Path

from mlops_assets import contract
from mlops_assets.batch_files import BatchNameError, batch_key, looks_like_a_drop

MONTH_COLUMN = "p_fecinformacion"


def extract_month(path: Path) -> int | None:
    """The extract's month (YYYYMMDD) from its first data row, or None when it cannot be read."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = csv.reader(handle)
            header = [name.strip() for name in next(rows)]
            return int(float(next(rows)[header.index(MONTH_COLUMN)]))
    except (OSError, StopIteration, ValueError, IndexError, UnicodeDecodeError):
        return None


def month_order(path: Path) -> tuple:
    """Oldest first: by the month the file holds, then by its `p<N>` number and name."""
    return (extract_month(path) or 0, contract.extract_sort_key(path.name))


def window_files(training_dir: Path) -> list[Path]:
    """Every batch file in the training folder, oldest month first."""
    if not training_dir.is_dir():
        return []
    files = []
    for path in training_dir.iterdir():
        if looks_like_a_drop(path):
            try:
                batch_key(path)
            except BatchNameError:
                continue
            files.append(path)
    return sorted(files, key=month_order)


@dataclasses.dataclass(frozen=True)
class Window:
    files: tuple[Path, ...]
    """What `raw_training` loads, oldest first: training files, and the admitted batch's staged file."""
    admitted: Path | None
    """The labeled batch a retraining run admits (staged under its canonical name), if any."""
    leaving: tuple[str, ...]
    """Training files the window drops: archived when the window is committed."""

    def __str__(self) -> str:
        names = ", ".join(p.name for p in self.files)
        change = f"; admits {self.admitted.name}, archives {', '.join(self.leaving) or 'nothing'}" if self.admitted else ""
        return f"{names}{change}"


def propose(training_dir: Path, size: int, admitted: Path | None = None) -> Window:
    """The newest `size` extracts, with `admitted` in place of any training file of the same name."""
    current = [p for p in window_files(training_dir) if admitted is None or p.name != admitted.name]
    candidates = sorted(current + ([admitted] if admitted else []), key=month_order)
    files = tuple(candidates[-size:])
    leaving = tuple(p.name for p in candidates[:-size]) if admitted else ()
    return Window(files, admitted, leaving)


def commit(training_dir: Path, archive_dir: Path, admitted: Path, leaving: list[str]) -> list[str]:
    """Make a proposed window the folders' state: the admitted batch moves into `training_dir`
    (an earlier file of the same name is archived first), the leaving extracts move to
    `archive_dir`. Nothing is deleted. Safe to repeat after a crash halfway. Returns what was archived."""
    archived = []
    target = training_dir / admitted.name
    if admitted.exists():
        if target.exists():
            archived.append(_archive(target, archive_dir))
        training_dir.mkdir(parents=True, exist_ok=True)
        os.replace(admitted, target)
    for name in leaving:
        if (training_dir / name).exists():
            archived.append(_archive(training_dir / name, archive_dir))
    return archived


def _archive(path: Path, archive_dir: Path) -> str:
    archive_dir.mkdir(parents=True, exist_ok=True)
    target = archive_dir / path.name
    if target.exists():
        target = archive_dir / f"{path.stem}.{dt.datetime.now():%Y%m%dT%H%M%S%f}{path.suffix}"
    os.replace(path, target)
    return target.name
