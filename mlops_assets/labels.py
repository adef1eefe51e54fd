"""Outcomes that arrive after a batch was scored: `data/raw/labels/<batch>.csv`.

In the bank a month's campaign outcome (`target`) is known weeks after the month was scored. A
labels file names the batch it belongs to and holds `key_value,target`; any other columns are
ignored, so the batch's extract delivered again with `target` is a labels file too. Every label
is checked against the scored batch before anything is written.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import duckdb
import pyarrow as pa

from mlops_assets import contract
from mlops_assets.extracts.errors import ExtractError, explain_reader_error
from mlops_assets.extracts.file_bytes import read_header, scan_bytes
from mlops_assets.extracts.sql import csv_source, sql_ident, sql_literal

COLUMNS = ("key_value", contract.TARGET)


@dataclasses.dataclass(frozen=True)
class LabelsCheck:
    """What validation learned about one labels file."""

    path: Path
    sha256: str
    rows: int
    matched: int
    """Labels whose `key_value` is a row of the scored batch: these are stored."""
    unknown_keys: int
    """Labels for keys the batch does not have: ignored and counted."""
    unlabeled_rows: int
    """Rows of the batch without a label: left without one and counted."""
    extra_columns: tuple[str, ...]


def load_labels(
    con: duckdb.DuckDBPyConnection, path: Path, batch_keys: str, *, max_unknown_share: float
) -> tuple[LabelsCheck, pa.Table]:
    """Validate a labels file against the batch's keys (`batch_keys`: a relation with `key_value`)
    and return the labels of known keys (`key_value`, `target`). Raises `ExtractError` naming the
    problem for a file that is empty, malformed or not UTF-8, lacks a column, has a label that is
    not 0/1, repeats a key, or has more unknown keys than `max_unknown_share` (the wrong batch)."""
    header = read_header(path)
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise ExtractError(path, f"missing column(s) {', '.join(missing)}; a labels file needs `key_value,target`")
    sha256 = scan_bytes(path)
    query = f"""
        SELECT count(*), count(*) FILTER (WHERE key_value IS NULL OR trim(key_value) = ''),
               count(*) FILTER (WHERE target IS NULL OR trim(target) NOT IN ('0', '1')),
               count(*) - count(DISTINCT key_value),
               count(*) FILTER (WHERE key_value NOT IN (SELECT key_value FROM {batch_keys})),
               (SELECT count(*) FROM {batch_keys}) - count(*) FILTER (WHERE key_value IN (SELECT key_value FROM {batch_keys}))
        FROM {csv_source(path, header)}
    """
    try:
        rows, no_key, bad_label, duplicates, unknown, unlabeled = con.execute(query).fetchall()[0]
    except duckdb.Error as exc:
        raise ExtractError(path, explain_reader_error(exc)) from exc
    problems = []
    if rows == 0:
        problems.append("has a header but no labels")
    if no_key:
        problems.append(f"{no_key} row(s) have no key_value")
    if bad_label:
        problems.append(f"{bad_label} row(s) have a `target` that is not 0 or 1")
    if duplicates:
        problems.append(f"{duplicates} key_value(s) appear more than once (which label holds?)")
    if rows and unknown > max_unknown_share * rows:
        problems.append(
            f"{unknown} of {rows} key_value(s) are not rows of the scored batch: labels of another batch?"
        )
    if problems:
        raise ExtractError(path, "; ".join(problems) + "; nothing was stored")
    labels = con.sql(
        f"SELECT key_value, CAST(trim(target) AS INTEGER) AS target FROM {csv_source(path, header)} "
        f"WHERE key_value IN (SELECT key_value FROM {batch_keys})"
    ).to_arrow_table()
    extra = tuple(c for c in header if c not in COLUMNS)
    return LabelsCheck(path, sha256, rows, labels.num_rows, int(unknown), int(unlabeled), extra), labels


def write_labeled_extract(con: duckdb.DuckDBPyConnection, extract: Path, labels_relation: str, out: Path) -> int:
    """Write `extract` joined with the labels in `labels_relation` (`key_value`, `target`) as a labeled
    extract at `out` (its rows that have a label, every column as delivered): what a retraining run
    admits to the training window for a batch whose outcomes came later. Returns the rows written."""
    header = read_header(extract)
    columns = ", ".join(f"e.{sql_ident(c)}" for c in header if c != contract.TARGET)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    written = con.execute(
        f"COPY (SELECT {columns}, l.target FROM {csv_source(extract, header)} e "
        f"JOIN {labels_relation} l ON e.key_value = l.key_value) TO {sql_literal(str(partial))} (HEADER, DELIMITER ',')"
    ).fetchall()[0][0]
    partial.replace(out)
    return written
