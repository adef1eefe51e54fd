"""Loading validated extracts: one typed pass for clean files, the text pass for the rest."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from mlops_assets.extracts.file_bytes import scan_bytes
from mlops_assets.extracts.sql import native_select, typed_select
from mlops_assets.extracts.validation import MAX_INVALID_SHARE, ExtractCheck, check_extract, checked_header, clean_checks
from mlops_assets.warehouse import replace_table


def load_extract(
    con: duckdb.DuckDBPyConnection, path: Path, *, with_target: bool, max_invalid_share: float = MAX_INVALID_SHARE
) -> tuple[ExtractCheck, pa.Table]:
    """Validate one extract and read all its contract columns, typed, as an Arrow table.

    One typed pass when the file is clean (see `native_select`); any other file goes through
    `check_extract`, which tolerates a few unparseable values or rejects the file with the reason.
    """
    files = _checked_files([path], with_target)
    try:
        typed = con.sql(_strict_select(files)).to_arrow_table()
        con.register("typed_extract", typed)
        checks = clean_checks(con, "typed_extract", files)
        con.unregister("typed_extract")
    except duckdb.Error:  # a value or row the typed reader cannot take: check_extract says what
        checks = None
    if checks is not None:
        return checks[0], typed
    [check], select = _lenient_select(con, [path], with_target, max_invalid_share)
    return check, con.sql(select).to_arrow_table()


def load_extracts(
    con: duckdb.DuckDBPyConnection,
    table: str,
    paths: list[Path],
    *,
    with_target: bool,
    max_invalid_share: float = MAX_INVALID_SHARE,
    loaded: dict[str, str] | None = None,
) -> list[ExtractCheck]:
    """Replace `table` with the validated, typed rows of `paths` plus `source_file`: all files pass
    or the table is left as it was. Clean files take one typed pass, as in `load_extract`.

    `loaded` names files (-> SHA-256) whose rows `table` already holds as they were read clean: a
    file with the same bytes keeps those rows instead of being parsed again (a retraining window
    shares all but one file with the last), and only the other files are read."""
    files = _checked_files(paths, with_target)
    kept = {path.name for path, _, sha256 in files if (loaded or {}).get(path.name) == sha256}
    checks = _typed_pass(con, table, files, kept)
    if checks is not None:
        return checks
    checks, select = _lenient_select(con, paths, with_target, max_invalid_share)
    replace_table(con, table, select)
    return checks


def _typed_pass(
    con: duckdb.DuckDBPyConnection, table: str, files: list[tuple[Path, list[str], str]], kept: set[str]
) -> list[ExtractCheck] | None:
    """`table` as the typed rows of `files`, keeping its rows of the `kept` files, in one
    transaction; None (and the table as it was) unless every file is clean."""
    # row order only matters for keeping the first of duplicate keys, which only the fallback does
    con.execute("SET preserve_insertion_order = false")
    con.execute("BEGIN TRANSACTION")
    checks = None
    try:
        if kept:
            con.execute(f"DELETE FROM {table} WHERE NOT list_contains($kept, source_file)", {"kept": sorted(kept)})
            fresh = [file for file in files if file[0].name not in kept]
            if fresh:
                con.execute(f"INSERT INTO {table} BY NAME {_strict_select(fresh)}")
        else:
            con.execute(f"CREATE OR REPLACE TABLE {table} AS {_strict_select(files)}")
        checks = clean_checks(con, table, files)
    except duckdb.Error:
        pass  # a value or row the typed reader cannot take (or a table of another shape): the caller's text pass says what
    finally:
        con.execute("COMMIT" if checks is not None else "ROLLBACK")
        con.execute("RESET preserve_insertion_order")
    return checks


def _checked_files(paths: list[Path], with_target: bool) -> list[tuple[Path, list[str], str]]:
    """Each file's checked header and content hash (its bytes are UTF-8), before any row is read."""
    return [(path, checked_header(path, with_target=with_target), scan_bytes(path)) for path in paths]


def _strict_select(files: list[tuple[Path, list[str], str]]) -> str:
    """The one typed pass over clean files: every column parsed as its contract type, or an error."""
    return " UNION ALL ".join(native_select(path, header) for path, header, _ in files)


def _lenient_select(
    con: duckdb.DuckDBPyConnection, paths: list[Path], with_target: bool, max_invalid_share: float
) -> tuple[list[ExtractCheck], str]:
    """The text pass for files the typed pass could not take: each file checked (counted, nulled or
    rejected with the reason), and the SQL that reads what passed, first of duplicate keys kept."""
    checks = [check_extract(con, path, with_target=with_target, max_invalid_share=max_invalid_share) for path in paths]
    return checks, typed_select(checks, dedupe=any(c.duplicate_keys for c in checks))
