"""Error translation: a rejected file's problem in words that name the file and the fix."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb


class ExtractError(ValueError):
    """A file that cannot be used; the message names the file, the problem and the fix."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"{Path(path).name}: {problem}")
        self.path = Path(path)
        self.problem = problem


def explain_reader_error(exc: duckdb.Error) -> str:
    text = str(exc)
    line = re.search(r"CSV Error on Line: (\d+)", text)
    where = f" (line {line.group(1)})" if line else ""
    if "Expected Number of Columns" in text:
        return f"a row has a different number of fields than the header{where}: the file is truncated, half-written or malformed"
    first_line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"could not be parsed as CSV{where}: {first_line}"
