"""SQL text for reading extracts with DuckDB's CSV reader: sources, quoting, typed columns."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlops_assets import contract

if TYPE_CHECKING:
    from mlops_assets.extracts.validation import ExtractCheck


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


def native_select(path: Path, header: list[str]) -> str:
    """SQL reading a file with each contract column parsed by the CSV reader as its own type, plus
    `source_file`. Faster than reading text and casting, and strict: a value that does not parse
    fails the whole query instead of becoming null, so only clean files get through."""
    source = csv_source(path, header, {name: contract.COLUMN_TYPES.get(name, "VARCHAR") for name in header})
    present = tuple(c for c in contract.ALL_COLUMNS if c in header)
    return f"SELECT {typed_columns(present, parsed=True)}, parse_filename(filename) AS source_file FROM {source}"


def typed_columns(present: tuple[str, ...], *, parsed: bool = False) -> str:
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


def typed_select(checks: "list[ExtractCheck]", *, dedupe: bool) -> str:
    """SQL selecting all contract columns of the checked files, cast to their types, plus `source_file`.

    Values validation counted as invalid become null (TRY_CAST); with `dedupe`, only the first
    row of each `key_value` per file is kept.
    """
    row_number = ", row_number() OVER () AS file_row" if dedupe else ""
    union = " UNION ALL ".join(
        f"SELECT {typed_columns(check.columns)}, parse_filename(filename) AS source_file{row_number} "
        f"FROM {csv_source(check.path, list(check.header))}"
        for check in checks
    )
    if not dedupe:
        return union
    return (
        f"SELECT * EXCLUDE (file_row) FROM ({union}) "
        "QUALIFY row_number() OVER (PARTITION BY source_file, key_value ORDER BY file_row) = 1"
    )
