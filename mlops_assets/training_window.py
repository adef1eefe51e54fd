"""Moving the training window forward without deleting anything, as the replaced pipeline did."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from mlops_assets.extracts import list_extracts


@dataclasses.dataclass(frozen=True)
class WindowChange:
    admitted: str
    archived: tuple[str, ...]
    window: tuple[str, ...]


def admit_labeled_batch(batch_file: Path, training_dir: Path, archive_dir: Path, window: int) -> WindowChange:
    """Copy a labeled inference extract into the training folder and archive the oldest extracts
    so `window` remain. The inference copy stays where it is: it is still the scored batch."""
    training_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(batch_file, training_dir / batch_file.name)
    archived = []
    extracts = list_extracts(training_dir)
    for oldest in extracts[: max(len(extracts) - window, 0)]:
        archive_dir.mkdir(parents=True, exist_ok=True)
        shutil.move(str(oldest), archive_dir / oldest.name)
        archived.append(oldest.name)
    return WindowChange(batch_file.name, tuple(archived), tuple(p.name for p in list_extracts(training_dir)))
