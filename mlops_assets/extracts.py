"""Reading and validating monthly extracts with DuckDB's CSV reader.

A file is checked completely before anything is written: header against the contract, every
row parsed (a truncated or non-UTF-8 file fails here), text in numeric columns counted. Only
then does the caller replace a table, so a bad file never touches earlier results.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import dataclasses
import re
from pathlib import Path

import duckdb
import pyarrow as pa

from mlops_assets import contract
from mlops_assets.warehouse import replace_table

MAX_INVALID_SHARE = 0.01
"""Above this share of unparseable values in one numeric column a file is rejected: that is a
broken export, not a few typos. Below it, the values become null and are counted."""


class ExtractError(ValueError):
    """A file that cannot be used; the message names the file, the problem and the fix."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"{Path(path).name}: {problem}")
        self.path = Path(path)
        self.problem = problem


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


def csv_source(path: Path, header: list[str], types: dict[str, str] | None = None) -> str:
    """One file in the contract's dialect: comma-separated, double quotes, a header row.

    The header we parsed names the columns and the sniffer is off, so every row must have exactly
    that many fields: a truncated or half-written file fails instead of being padded. Columns are
    read as text unless `types` says otherwise.
    """
    types = types or {}
    columns = ", ".join(f"{sql_literal(name)}: '{types.get(name, 'VARCHAR')}'" for name in header)
    return (
        f"read_csv({sql_literal(str(path))}, columns={{{columns}}}, header=true, auto_detect=false, "
        "delim=',', quote='\"', escape='\"', strict_mode=true, null_padding=false, filename=true)"
    )


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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
        SELECT count(*), count(*) - count(DISTINCT key_value), {invalid_sql}{target_check},
               histogram({sql_ident(category)})
        FROM {csv_source(path, header)}
    """
    try:
        row = con.execute(query).fetchall()[0]
    except duckdb.Error as exc:
        raise ExtractError(path, explain_reader_error(exc)) from exc
    rows, duplicates, *counts = row
    histogram = counts.pop()
    bad_target = counts.pop() if target_check else 0
    if rows == 0:
        raise ExtractError(path, "has a header but no data rows")
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


def explain_reader_error(exc: duckdb.Error) -> str:
    text = str(exc)
    line = re.search(r"CSV Error on Line: (\d+)", text)
    where = f" (line {line.group(1)})" if line else ""
    if "Expected Number of Columns" in text:
        return f"a row has a different number of fields than the header{where}: the file is truncated, half-written or malformed"
    first_line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"could not be parsed as CSV{where}: {first_line}"


def typed_select(checks: list[ExtractCheck], *, dedupe: bool) -> str:
    """SQL selecting all contract columns of the checked files, cast to their types, plus `source_file`.

    Values validation counted as invalid become null (TRY_CAST); with `dedupe`, only the first
    row of each `key_value` per file is kept.
    """
    row_number = ", row_number() OVER () AS file_row" if dedupe else ""
    union = " UNION ALL ".join(
        f"SELECT {_typed_columns(check.columns)}, parse_filename(filename) AS source_file{row_number} "
        f"FROM {csv_source(check.path, list(check.header))}"
        for check in checks
    )
    if not dedupe:
        return union
    return (
        f"SELECT * EXCLUDE (file_row) FROM ({union}) "
        "QUALIFY row_number() OVER (PARTITION BY source_file, key_value ORDER BY file_row) = 1"
    )


def load_extract(
    con: duckdb.DuckDBPyConnection, path: Path, *, with_target: bool, max_invalid_share: float = MAX_INVALID_SHARE
) -> tuple[ExtractCheck, pa.Table]:
    """Validate one extract and read all its contract columns, typed, as an Arrow table.

    One typed pass when the file is clean (see `_native_select`); any other file goes through
    `check_extract`, which tolerates a few unparseable values or rejects the file with the reason.
    """
    header = checked_header(path, with_target=with_target)
    sha256 = scan_bytes(path)
    try:
        typed = con.sql(_native_select(path, header)).to_arrow_table()
        con.register("typed_extract", typed)
        checks = _clean_checks(con, "typed_extract", [(path, header, sha256)])
        con.unregister("typed_extract")
    except duckdb.Error:  # a value or row the typed reader cannot take: check_extract says what
        checks = None
    if checks is not None:
        return checks[0], typed
    check = check_extract(con, path, with_target=with_target, max_invalid_share=max_invalid_share)
    return check, con.sql(typed_select([check], dedupe=check.duplicate_keys > 0)).to_arrow_table()


def load_extracts(
    con: duckdb.DuckDBPyConnection, table: str, paths: list[Path], *, with_target: bool, max_invalid_share: float = MAX_INVALID_SHARE
) -> list[ExtractCheck]:
    """Replace `table` with the validated, typed rows of `paths` plus `source_file`: all files pass
    or the table is left as it was. Clean files take one typed pass, as in `load_extract`."""
    files = [(path, checked_header(path, with_target=with_target), scan_bytes(path)) for path in paths]
    # row order only matters for keeping the first of duplicate keys, which only the fallback does
    con.execute("SET preserve_insertion_order = false")
    con.execute("BEGIN TRANSACTION")
    checks = None
    try:
        con.execute(f"CREATE OR REPLACE TABLE {table} AS " + " UNION ALL ".join(_native_select(p, h) for p, h, _ in files))
        checks = _clean_checks(con, table, files)
    except duckdb.Error:
        pass  # a value or row the typed reader cannot take: check_extract below says what
    finally:
        con.execute("COMMIT" if checks is not None else "ROLLBACK")
        con.execute("RESET preserve_insertion_order")
    if checks is not None:
        return checks
    checks = [check_extract(con, p, with_target=with_target, max_invalid_share=max_invalid_share) for p in paths]
    replace_table(con, table, typed_select(checks, dedupe=any(c.duplicate_keys for c in checks)))
    return checks


def _native_select(path: Path, header: list[str]) -> str:
    """SQL reading a file with each contract column parsed by the CSV reader as its own type, plus
    `source_file`. Faster than reading text and casting, and strict: a value that does not parse
    fails the whole query instead of becoming null, so only clean files get through."""
    source = csv_source(path, header, {name: contract.COLUMN_TYPES.get(name, "VARCHAR") for name in header})
    present = tuple(c for c in contract.ALL_COLUMNS if c in header)
    return f"SELECT {_typed_columns(present, parsed=True)}, parse_filename(filename) AS source_file FROM {source}"


def _clean_checks(
    con: duckdb.DuckDBPyConnection, relation: str, files: list[tuple[Path, list[str], str]]
) -> list[ExtractCheck] | None:
    """What `check_extract` would report for files read by `_native_select` into `relation`, or
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


def _typed_columns(present: tuple[str, ...], *, parsed: bool = False) -> str:
    """Every contract column cast to its type (as is when the reader already `parsed` it as that
    type); an optional column the file lacks (`target`) is null."""
    casts = []
    for c in contract.ALL_COLUMNS:
        kind = contract.COLUMN_TYPES[c]
        if c not in present:
            expr = f"CAST(NULL AS {kind})"
        elif parsed or kind == "VARCHAR":
            expr = sql_ident(c)
        else:
            expr = f"TRY_CAST(TRY_CAST({sql_ident(c)} AS DOUBLE) AS {kind})"
        casts.append(f"{expr} AS {sql_ident(c)}")
    return ", ".join(casts)
