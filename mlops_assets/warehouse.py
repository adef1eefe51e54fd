"""Writing the DuckDB warehouse so that a failure never leaves a half-replaced table.

Every write is one transaction: a table is replaced whole, or one batch's rows are swapped,
or one row is appended. Readers see the old state until the commit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable
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
    pipeline_skops BLOB,
    gate_passed BOOLEAN,
    candidate VARCHAR,
    candidate_reason VARCHAR,
    evaluation VARCHAR,
    evaluation_sha256 VARCHAR,
    estimated_auc DOUBLE,
    calibration_error DOUBLE
)
"""
"""One row per trained version. `gate_passed`: the promotion gate's verdict; `promoted` turns true
only when the `champion` asset has made it the champion (table `champion`, MLflow alias)."""

MODEL_CANDIDATES_DDL = """
CREATE TABLE IF NOT EXISTS model_candidates (
    version INTEGER,
    candidate VARCHAR,
    description VARCHAR,
    train_rows BIGINT,
    weighted BOOLEAN,
    roc_auc DOUBLE,
    top_decile_lift DOUBLE,
    calibration_error DOUBLE,
    won BOOLEAN,
    mlflow_run_id VARCHAR
)
"""
"""Every candidate training set a version's run fitted, with its metrics on the evaluation rows."""

MODEL_DATA_DDL = """
CREATE TABLE IF NOT EXISTS model_data (
    version INTEGER,
    role VARCHAR,
    file_name VARCHAR,
    sha256 VARCHAR,
    rows BIGINT
)
"""
"""What each version learned from (`role` = 'train') and was evaluated on ('evaluation'): content
hashes, so the data behind a model is known after the window moved on."""

TRAINING_WINDOW_DDL = """
CREATE TABLE IF NOT EXISTS training_window (
    position INTEGER,
    file_name VARCHAR,
    sha256 VARCHAR,
    size_bytes BIGINT,
    rows BIGINT,
    admitted BOOLEAN,
    values_nulled BIGINT,
    duplicate_keys_dropped BIGINT
)
"""
"""The extracts `raw_training` holds now, oldest first; `admitted` marks the batch a retraining run
admitted; what validation nulled or dropped in each."""

CHAMPION_DDL = """
CREATE TABLE IF NOT EXISTS champion (
    version INTEGER,
    candidate VARCHAR,
    reason VARCHAR,
    reference VARCHAR,
    reference_rows BIGINT,
    promoted_at TIMESTAMP,
    dagster_run_id VARCHAR
)
"""
"""One row per promotion, newest last: the version that scores batches is the newest row."""

BATCH_LABELS_DDL = """
CREATE TABLE IF NOT EXISTS batch_labels (
    batch VARCHAR,
    key_value VARCHAR,
    target INTEGER,
    labels_file VARCHAR,
    labels_sha256 VARCHAR,
    received_at TIMESTAMP
)
"""
"""Outcomes that arrived after a batch was scored (`data/raw/labels/<batch>.csv`)."""


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
    judged_at TIMESTAMP,
    reference VARCHAR,
    labels_source VARCHAR,
    labeled_rows BIGINT,
    estimated_auc DOUBLE,
    estimated_top_decile_positives DOUBLE,
    realized_top_decile_positives BIGINT,
    realized_lift DOUBLE,
    realized_calibration_error DOUBLE,
    retraining_outcome VARCHAR
)
"""


@dataclasses.dataclass(frozen=True)
class Champion:
    version: int
    roc_auc: float
    decision_threshold: float
    pipeline_skops: bytes


def champion(con: duckdb.DuckDBPyConnection) -> Champion | None:
    """The version that scores batches: the newest row of `champion` (its MLflow alias is set in the
    same transaction). A warehouse from before the `champion` table falls back to `model.promoted`."""
    if table_exists(con, "champion"):
        query = (
            "SELECT m.version, m.roc_auc, m.decision_threshold, m.pipeline_skops FROM champion c "
            "JOIN model m USING (version) ORDER BY c.promoted_at DESC LIMIT 1"
        )
    elif table_exists(con, "model"):
        query = (
            "SELECT version, roc_auc, decision_threshold, pipeline_skops FROM model "
            "WHERE promoted ORDER BY promoted_at DESC, version DESC LIMIT 1"
        )
    else:
        return None
    rows = con.execute(query).fetchall()
    return Champion(*rows[0]) if rows else None


def record_model(
    con: duckdb.DuckDBPyConnection,
    row: dict[str, Any],
    candidates: list[dict[str, Any]],
    data: list[dict[str, Any]],
    evaluation_scores: Any,
) -> None:
    """Add a trained version with its candidates, the hashes of its data, and its scores on the
    evaluation rows (what the `champion` asset snapshots as `score_reference` if it is promoted)."""
    with transaction(con):
        for ddl in (MODEL_TABLE_DDL, MODEL_CANDIDATES_DDL, MODEL_DATA_DDL):
            create_or_migrate(con, ddl)
        insert_row(con, "model", row)
        for candidate in candidates:
            insert_row(con, "model_candidates", {"version": row["version"], **candidate})
        for item in data:
            insert_row(con, "model_data", {"version": row["version"], **item})
        con.register("incoming_scores", evaluation_scores)
        con.execute(
            "CREATE OR REPLACE TABLE evaluation_scores AS SELECT probability, $v AS model_version FROM incoming_scores",
            {"v": row["version"]},
        )
        con.unregister("incoming_scores")


def promote(
    con: duckdb.DuckDBPyConnection, row: dict[str, Any], reference_columns: list[str], publish: Callable[[], None]
) -> None:
    """Make `row['version']` the champion: its row in `champion`, `model.promoted`, and what the
    batches it scores are judged against (the rows it was evaluated on, `drift_reference`, and its
    scores there, `score_reference`, one set per version that still scores a batch), in one transaction. `publish` (the MLflow alias) runs inside it, just
    before the commit, so the warehouse and MLflow never disagree: a failed publish rolls back."""
    version = row["version"]
    with transaction(con):
        create_or_migrate(con, CHAMPION_DDL)
        insert_row(con, "champion", row)
        con.execute("UPDATE model SET promoted = true, promoted_at = $t WHERE version = $v", {"t": row["promoted_at"], "v": version})
        columns = ", ".join(reference_columns)
        con.execute(f"CREATE TABLE IF NOT EXISTS drift_reference AS SELECT {columns}, 0 AS model_version FROM features WHERE false")
        con.execute("CREATE TABLE IF NOT EXISTS score_reference (probability DOUBLE, model_version INTEGER)")
        for table in ("drift_reference", "score_reference"):
            con.execute(f"DELETE FROM {table} WHERE model_version = $v", {"v": version})
        con.execute(
            f"INSERT INTO drift_reference SELECT {columns}, $v AS model_version FROM features WHERE split = 'test'", {"v": version}
        )
        con.execute(
            "INSERT INTO score_reference SELECT probability, model_version FROM evaluation_scores WHERE model_version = $v",
            {"v": version},
        )
        # a batch is judged against the reference of the version that scored it: keep those, drop the rest
        in_use = "SELECT DISTINCT model_version FROM predictions" if table_exists(con, "predictions") else "SELECT NULL"
        for table in ("drift_reference", "score_reference"):
            con.execute(f"DELETE FROM {table} WHERE model_version <> $v AND model_version NOT IN ({in_use})", {"v": version})
        publish()


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection):
    """BEGIN ... COMMIT, or ROLLBACK on any exception."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def create_or_migrate(con: duckdb.DuckDBPyConnection, ddl: str) -> None:
    """Create the table of `ddl`, or add the columns a newer release declares to an existing one
    (new columns are NULL on old rows), so a warehouse written by an earlier release keeps working."""
    con.execute(ddl)
    table = re.search(r"CREATE TABLE IF NOT EXISTS (\w+)", ddl).group(1)
    present = table_columns(con, table)
    body = ddl[ddl.index("(") + 1 : ddl.rindex(")")]
    for line in body.split(",\n"):
        name, kind = line.strip().split(None, 1)
        if name.strip('"') not in present:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind.removesuffix(' PRIMARY KEY')}")


def replace_training_window(con: duckdb.DuckDBPyConnection, files: Any) -> None:
    """The loaded window's files (a DataFrame with TRAINING_WINDOW_DDL's columns) replace the last one's."""
    with transaction(con):
        con.execute("DROP TABLE IF EXISTS training_window")
        con.execute(TRAINING_WINDOW_DDL)
        insert_rows(con, "training_window", files)


def clean_training_files(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Files of the loaded window that were read clean (nothing nulled or dropped) and whose rows are
    all in `raw_training`: name -> SHA-256. A window recorded by an earlier release gives none."""
    if "values_nulled" not in table_columns(con, "training_window") or not table_exists(con, "raw_training"):
        return {}
    return dict(
        con.execute(
            "SELECT w.file_name, w.sha256 FROM training_window w "
            "JOIN (SELECT source_file, count(*) AS rows FROM raw_training GROUP BY source_file) r ON r.source_file = w.file_name "
            "WHERE w.values_nulled = 0 AND w.duplicate_keys_dropped = 0 AND r.rows = w.rows"
        ).fetchall()
    )


def replace_table(con: duckdb.DuckDBPyConnection, table: str, select_sql: str, params: Any = None) -> int:
    """Replace `table` with the result of `select_sql` atomically; returns its row count."""
    with transaction(con):
        con.execute(f"CREATE OR REPLACE TABLE {table} AS {select_sql}", params)
        return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def replace_view(con: duckdb.DuckDBPyConnection, view: str, select_sql: str) -> int:
    """Point `view` at `select_sql` atomically (replacing a table of that name, as older releases
    stored it); returns its row count."""
    with transaction(con):
        if con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'main' AND table_name = ?", [view]).fetchall()[0][0]:
            con.execute(f"DROP TABLE {view}")
        con.execute(f"CREATE OR REPLACE VIEW {view} AS {select_sql}")
        return con.execute(f"SELECT count(*) FROM {view}").fetchall()[0][0]


def replace_batch(
    con: duckdb.DuckDBPyConnection, table: str, ddl: str, batch: str, rows: Any, log: tuple[str, str, dict] | None = None
) -> int:
    """Swap one batch's rows of `table` for `rows` (a DataFrame or Arrow table), atomically.

    Other batches are untouched. `log` = (table, ddl, row) appends one row in the same transaction.
    """
    with transaction(con):
        create_or_migrate(con, ddl)
        con.execute(f"DELETE FROM {table} WHERE batch = ?", [batch])
        insert_rows(con, table, rows)
        if log is not None:
            log_table, log_ddl, log_row = log
            create_or_migrate(con, log_ddl)
            insert_row(con, log_table, log_row)
    return con.execute(f"SELECT count(*) FROM {table} WHERE batch = ?", [batch]).fetchall()[0][0]


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: Any) -> None:
    """Append `rows` (a DataFrame or Arrow table) to `table`, matching columns by name."""
    con.register("incoming_rows", rows)
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming_rows")
    con.unregister("incoming_rows")


def insert_row(con: duckdb.DuckDBPyConnection, table: str, row: dict[str, Any]) -> None:
    columns = ", ".join(row)
    placeholders = ", ".join("?" for _ in row)
    con.execute(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", list(row.values()))


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    """The columns `table` has in this warehouse (none when it does not exist): what an earlier
    release wrote may lack the newer ones."""
    return {
        name for (name,) in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = 'main'", [table]
        ).fetchall()
    }


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ? AND table_schema = 'main'", [table]
        ).fetchall()[0][0]
    )
