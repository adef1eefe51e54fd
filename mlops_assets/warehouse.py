"""Writing the DuckDB warehouse so that a failure never leaves a half-replaced table.

Every write is one transaction: a table is replaced whole, or one batch's rows are swapped,
or one row is appended. Readers see the old state until the commit.
"""

from __future__ import annotations

from typing import Any

import duckdb

MODEL_TABLE_DDL = """
CREATE TABLE IF NOT EXISTS model (
    version INTEGER PRIMARY KEY,
    run_id VARCHAR,
    model_uri VARCHAR,
    roc_auc DOUBLE,
    pr_auc DOUBLE,
    log_loss DOUBLE,
    brier DOUBLE,
    top_decile_lift DOUBLE,
    top_decile_capture DOUBLE,
    decision_threshold DOUBLE,
    champion_auc_same_data DOUBLE,
    training_files VARCHAR[],
    test_file VARCHAR,
    train_rows BIGINT,
    test_rows BIGINT,
    trained_at TIMESTAMP,
    promoted BOOLEAN,
    promoted_at TIMESTAMP,
    promotion_reason VARCHAR
)
"""


def replace_table(con: duckdb.DuckDBPyConnection, table: str, select_sql: str, params: Any = None) -> int:
    """Replace `table` with the result of `select_sql` atomically; returns its row count."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE OR REPLACE TABLE {table} AS {select_sql}", params)
        rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return rows


def insert_row(con: duckdb.DuckDBPyConnection, table: str, row: dict[str, Any]) -> None:
    columns = ", ".join(row)
    placeholders = ", ".join("?" for _ in row)
    con.execute(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", list(row.values()))


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_schema = 'main'", [table]
        ).fetchone()[0]
    )
