"""Writing the DuckDB warehouse so that a failure never leaves a half-replaced table.

Every write is one transaction: a table is replaced whole, or one batch's rows are swapped,
or one row is appended. Readers see the old state until the commit.
"""

from __future__ import annotations

import dataclasses
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
    promotion_reason VARCHAR,
    pipeline_skops BLOB
)
"""


PREDICTIONS_DDL = """
CREATE TABLE IF NOT EXISTS predictions (
    batch VARCHAR,
    source_file VARCHAR,
    partition VARCHAR,
    key_value VARCHAR,
    codunicocli VARCHAR,
    p_fecinformacion BIGINT,
    monto DOUBLE,
    prob_value_contact DOUBLE,
    grp_campecs06m VARCHAR,
    target INTEGER,
    probability DOUBLE,
    predicted_label BOOLEAN,
    decision_threshold DOUBLE,
    model_version INTEGER,
    scored_at TIMESTAMP
)
"""

BUSINESS_VALUE_DDL = """
CREATE TABLE IF NOT EXISTS business_value (
    batch VARCHAR,
    key_value VARCHAR,
    codunicocli VARCHAR,
    probability DOUBLE,
    prob_value_contact DOUBLE,
    prob_value_contact_filled BOOLEAN,
    monto DOUBLE,
    monto_missing BOOLEAN,
    business_value DOUBLE,
    execution_group TINYINT,
    model_version INTEGER,
    valued_at TIMESTAMP
)
"""

INFERENCE_LOG_DDL = """
CREATE TABLE IF NOT EXISTS inference_log (
    batch VARCHAR,
    file_name VARCHAR,
    file_size_bytes BIGINT,
    content_sha256 VARCHAR,
    rows_read BIGINT,
    rows_scored BIGINT,
    rows_rejected BIGINT,
    values_nulled BIGINT,
    unseen_category_rows BIGINT,
    model_version INTEGER,
    dagster_run_id VARCHAR,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    duration_seconds DOUBLE
)
"""


DRIFT_REPORT_DDL = """
CREATE TABLE IF NOT EXISTS drift_report (
    batch VARCHAR,
    "column" VARCHAR,
    method VARCHAR,
    score DOUBLE,
    threshold DOUBLE,
    drifted BOOLEAN,
    champion_version INTEGER
)
"""

DRIFT_HISTORY_DDL = """
CREATE TABLE IF NOT EXISTS drift_history (
    batch VARCHAR,
    drift_score DOUBLE,
    drifted_columns INTEGER,
    features_judged INTEGER,
    drift_detected BOOLEAN,
    champion_version INTEGER,
    champion_test_auc DOUBLE,
    realized_auc DOUBLE,
    concept_drift BOOLEAN,
    score_drift DOUBLE,
    has_labels BOOLEAN,
    retraining VARCHAR,
    reference_rows BIGINT,
    current_rows BIGINT,
    judged_at TIMESTAMP
)
"""


@dataclasses.dataclass(frozen=True)
class Champion:
    version: int
    roc_auc: float
    decision_threshold: float
    pipeline_skops: bytes


def champion(con: duckdb.DuckDBPyConnection) -> Champion | None:
    """The most recently promoted model version (MLflow's `champion` alias is set in the same step)."""
    if not table_exists(con, "model"):
        return None
    rows = con.execute(
        "SELECT version, roc_auc, decision_threshold, pipeline_skops FROM model "
        "WHERE promoted ORDER BY promoted_at DESC, version DESC LIMIT 1"
    ).fetchall()
    return Champion(*rows[0]) if rows else None


def record_model(
    con: duckdb.DuckDBPyConnection, row: dict[str, Any], reference_columns: list[str], test_scores: Any
) -> None:
    """Add a model version; when it is promoted, also snapshot what drift is judged against:
    its training rows (`drift_reference`) and its scores on the test month (`score_reference`)."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(MODEL_TABLE_DDL)
        insert_row(con, "model", row)
        if row["promoted"]:
            columns = ", ".join(reference_columns)
            con.execute(
                f"CREATE OR REPLACE TABLE drift_reference AS SELECT {columns}, $v AS model_version "
                "FROM features WHERE split = 'train'",
                {"v": row["version"]},
            )
            con.register("test_scores", test_scores)
            con.execute(
                "CREATE OR REPLACE TABLE score_reference AS SELECT probability, $v AS model_version FROM test_scores",
                {"v": row["version"]},
            )
            con.unregister("test_scores")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def replace_table(con: duckdb.DuckDBPyConnection, table: str, select_sql: str, params: Any = None) -> int:
    """Replace `table` with the result of `select_sql` atomically; returns its row count."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE OR REPLACE TABLE {table} AS {select_sql}", params)
        rows = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return rows


def replace_batch(
    con: duckdb.DuckDBPyConnection, table: str, ddl: str, batch: str, rows: Any, log: tuple[str, str, dict] | None = None
) -> int:
    """Swap one batch's rows of `table` for `rows` (a DataFrame or Arrow table), atomically.

    Other batches are untouched. `log` = (table, ddl, row) appends one row in the same transaction.
    """
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(ddl)
        con.execute(f"DELETE FROM {table} WHERE batch = ?", [batch])
        con.register("incoming_batch", rows)
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming_batch")
        con.unregister("incoming_batch")
        if log is not None:
            log_table, log_ddl, log_row = log
            con.execute(log_ddl)
            insert_row(con, log_table, log_row)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return con.execute(f"SELECT count(*) FROM {table} WHERE batch = ?", [batch]).fetchall()[0][0]


def insert_row(con: duckdb.DuckDBPyConnection, table: str, row: dict[str, Any]) -> None:
    columns = ", ".join(row)
    placeholders = ", ".join("?" for _ in row)
    con.execute(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", list(row.values()))


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_schema = 'main'", [table]
        ).fetchall()[0][0]
    )
