"""The byte-level checks of a file: its header row, UTF-8 throughout, and its content hash."""

from __future__ import annotations

import codecs
import csv
import hashlib
from pathlib import Path

from mlops_assets.extracts.errors import ExtractError


def read_header(path: Path) -> list[str]:
    """The header row, or a clear error for an empty file or a header that is not UTF-8."""
    with open(path, "rb") as handle:
        first_line = handle.readline()
    try:
        text = first_line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ExtractError(path, f"header is not UTF-8 ({exc.reason} at byte {exc.start}); re-export as UTF-8") from exc
    header = next(csv.reader([text]), None)
    if not header:
        raise ExtractError(path, "file is empty (no header row); it may still be being written")
    return [name.strip() for name in header]


def scan_bytes(path: Path, chunk_bytes: int = 1 << 22) -> str:
    """Check that every byte is UTF-8 (the contract; DuckDB does not check every byte) and return
    the file's SHA-256, in one pass over the file."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    digest = hashlib.sha256()
    offset = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                raise ExtractError(
                    path, f"contains bytes that are not valid UTF-8 (at byte {offset + exc.start}); re-export as UTF-8"
                ) from exc
            offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise ExtractError(path, "ends inside a UTF-8 character: the file is truncated") from exc
    return digest.hexdigest()
