"""What a batch file is: one rule shared by the inference sensor, the assets, the campaign app's
upload and the training window.

A batch file is `<key>.csv` (the extension in any case: `.csv`, `.CSV`) whose key is 1-100
letters, digits, `_` or `-`, starting with a letter or digit. The key is the batch's name
everywhere: its dynamic partition, the `batch` column of every table, its report folder. A file
whose name cannot be a key is set aside with a reason instead of being scored.
"""

from __future__ import annotations

import re
from pathlib import Path

ALLOWED_CHARACTERS = "A-Za-z0-9_-"
KEY = re.compile(rf"[A-Za-z0-9][{ALLOWED_CHARACTERS}]{{0,99}}")
EXTENSION = ".csv"


class BatchNameError(ValueError):
    """A file name that cannot name a batch; the message says why and how to rename it."""


def looks_like_a_drop(path: Path) -> bool:
    """A CSV someone meant to drop (any extension case), not a hidden or temporary file."""
    return path.is_file() and path.suffix.lower() == EXTENSION and not path.name.startswith((".", "~"))


def batch_key(path: Path | str) -> str:
    """The batch a file is: its name without `.csv` (any case), or `BatchNameError`."""
    name = Path(path).name
    stem, suffix = name[: -len(EXTENSION)], name[-len(EXTENSION) :]
    if suffix.lower() != EXTENSION:
        raise BatchNameError(f"{name!r} is not a .csv file; batch files are named like p5_extrac.csv")
    if not KEY.fullmatch(stem):
        raise BatchNameError(
            f"{name!r} cannot name a batch: use 1-100 letters, digits, '_' or '-', starting with a letter or digit "
            "(like p5_extrac.csv); rename the file and drop it again"
        )
    return stem


def file_name(key: str) -> str:
    """The canonical file name of batch `key`: what the training window stores it as."""
    return f"{key}{EXTENSION}"


def batch_path(folder: Path, key: str) -> Path:
    """The file of batch `key` in `folder` (`<key>.csv` in any extension case); `<key>.csv` when
    there is none, so a message can name where it was expected."""
    for candidate in (folder / f"{key}{EXTENSION}", folder / f"{key}{EXTENSION.upper()}"):
        if candidate.is_file():
            return candidate
    if folder.is_dir():
        for candidate in folder.iterdir():
            if candidate.name.lower() == f"{key}{EXTENSION}".lower() and candidate.name[: len(key)] == key and candidate.is_file():
                return candidate
    return folder / f"{key}{EXTENSION}"
