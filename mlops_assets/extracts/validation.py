"""Validating an extract against the contract: what is wrong with a file, counted or rejected."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import duckdb

from mlops_assets import contract
from mlops_assets.extracts.errors import ExtractError, explain_reader_error
from mlops_assets.extracts.file_bytes import read_header, scan_bytes
from mlops_assets.extracts.sql import csv_source, sql_ident


MAX_INVALID_SHARE = 0.01
"""Above this share of unparseable values in one numeric column a file is rejected: that is a
broken export, not a few typos. Below it, the values become null and are counted."""


@dataclasses.dataclass(frozen=True)
class ExtractCheck:
    """What validation learned about one file."""

    path: Path
    rows: int
    extra_columns: tuple[str, ...]
    invalid_values: dict[str, int]
    """Per numeric column: values that were not numbers and will be read as null."""
    duplicate_keys: int
    """Rows whose `key_value` repeats an earlier row of the same file; only the first is kept."""
    categories: dict[str, int]
    """Row counts per value of the categorical feature (null excluded)."""
    columns: tuple[str, ...]
    """Contract columns present in the file, in contract order."""
    header: tuple[str, ...]
    """The file's own header, in file order."""
    sha256: str
    size_bytes: int

    @property
    def has_target(self) -> bool:
        return contract.TARGET in self.columns

    @classmethod
    def of(
        cls,
        path: Path,
        header: list[str],
        sha256: str,
        *,
        rows: int,
        invalid_values: dict[str, int],
        duplicate_keys: int,
        histogram: dict | None,
    ) -> "ExtractCheck":
        """The check of a file with this header and these counts; the column lists follow from the header."""
        return cls(
            path,
            rows,
            tuple(c for c in header if c not in contract.ALL_COLUMNS),
            invalid_values,
            int(duplicate_keys),
            {str(k): int(v) for k, v in (histogram or {}).items()},
            tuple(c for c in contract.ALL_COLUMNS if c in header),
            tuple(header),
            sha256,
            path.stat().st_size,
        )


def checked_header(path: Path, *, with_target: bool) -> list[str]:
    """The header, after checking it names every required column once."""
    header = read_header(path)
    missing = [c for c in contract.required_columns(with_target=with_target) if c not in header]
    if missing:
        raise ExtractError(path, f"missing required column(s) {', '.join(missing)}; the contract needs all of them")
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise ExtractError(path, f"column(s) {', '.join(duplicated)} appear more than once in the header")
    return header


def check_extract(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    with_target: bool,
    max_invalid_share: float = MAX_INVALID_SHARE,
) -> ExtractCheck:
    """Validate one extract completely, raising `ExtractError` for anything unusable.

    Reads every field as text, so it can count what does not parse; `load_extract(s)` use it
    only for files their one typed pass could not take as they are.
    """
    header = checked_header(path, with_target=with_target)
    sha256 = scan_bytes(path)
    known = [c for c in contract.ALL_COLUMNS if c in header]
    numeric = [c for c in contract.NUMERIC_COLUMNS if c in known]
    invalid_sql = ", ".join(
        f"count(*) FILTER (WHERE {sql_ident(c)} IS NOT NULL AND TRY_CAST({sql_ident(c)} AS DOUBLE) IS NULL)" for c in numeric
    )
    target_check = ""
    if contract.TARGET in known:
        target_check = f", count(*) FILTER (WHERE {sql_ident(contract.TARGET)} IS NULL OR TRY_CAST({sql_ident(contract.TARGET)} AS DOUBLE) NOT IN (0, 1))"
    category = contract.CATEGORICAL_FEATURES[0]
    query = f"""
        SELECT count(*), count(key_value) - count(DISTINCT key_value),
               count(*) FILTER (WHERE key_value IS NULL OR trim(key_value) = ''), {invalid_sql}{target_check},
               histogram({sql_ident(category)})
        FROM {csv_source(path, header)}
    """
    try:
        row = con.execute(query).fetchall()[0]
    except duckdb.Error as exc:
        raise ExtractError(path, explain_reader_error(exc)) from exc
    rows, duplicates, missing_keys, *counts = row
    histogram = counts.pop()
    bad_target = counts.pop() if target_check else 0
    if rows == 0:
        raise ExtractError(path, "has a header but no data rows")
    if missing_keys:
        raise ExtractError(
            path, f"{missing_keys} row(s) have no key_value; every row needs its key so its score can be traced, fix the export"
        )
    if bad_target:
        raise ExtractError(path, f"{bad_target} row(s) have a `target` that is not 0 or 1; labels must be 0/1")
    invalid = {c: int(n) for c, n in zip(numeric, counts) if n}
    too_many = {c: n for c, n in invalid.items() if n > max_invalid_share * rows}
    if too_many:
        worst = ", ".join(f"{c} ({n} of {rows} rows)" for c, n in too_many.items())
        raise ExtractError(
            path,
            f"non-numeric values in numeric column(s) {worst}: more than {max_invalid_share:.0%} of rows; "
            "fix the export (decimal separator, quoting, shifted columns)",
        )
    return ExtractCheck.of(path, header, sha256, rows=rows, invalid_values=invalid, duplicate_keys=duplicates, histogram=histogram)


def clean_checks(
    con: duckdb.DuckDBPyConnection, relation: str, files: list[tuple[Path, list[str], str]]
) -> list[ExtractCheck] | None:
    """What `check_extract` would report for files read by `native_select` into `relation`, or
    None unless every file is clean: rows present, no repeated `key_value`, labels (if any) 0/1."""
    category = sql_ident(contract.CATEGORICAL_FEATURES[0])
    stats = {
        name: (rows, duplicates, labels, bad_labels, histogram)
        for name, rows, duplicates, labels, bad_labels, histogram in con.execute(
            f"SELECT source_file, count(*), count(*) - count(DISTINCT key_value), count({contract.TARGET}), "
            f"count(*) FILTER (WHERE {contract.TARGET} NOT IN (0, 1)), histogram({category}) "
            f"FROM {relation} GROUP BY source_file"
        ).fetchall()
    }
    checks = []
    for path, header, sha256 in files:
        if path.name not in stats:
            return None
        rows, duplicates, labels, bad_labels, histogram = stats[path.name]
        has_target = contract.TARGET in header
        if duplicates or bad_labels or (has_target and labels != rows):
            return None
        checks.append(ExtractCheck.of(path, header, sha256, rows=rows, invalid_values={}, duplicate_keys=0, histogram=histogram))
    return checks
