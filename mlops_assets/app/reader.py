"""Read-only queries the campaign app shows, one short-lived DuckDB connection per page load.

DuckDB lets no one open the file while a pipeline step holds it for writing, not even to read;
`open_warehouse` turns that (and a warehouse that does not exist yet) into a message for the user.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd

from mlops_assets.scoring import group_summary
from mlops_assets.warehouse import table_exists

BUSY_HINT = "a pipeline run is writing it right now; DuckDB lets nobody read while it writes. Try again in a few seconds."


class WarehouseUnavailable(RuntimeError):
    """The warehouse cannot be read now; the message says why and what to do."""


@contextlib.contextmanager
def open_warehouse(path: str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection, closed on exit so the pipeline's next writer is not blocked."""
    path = Path(path)
    if not path.exists():
        raise WarehouseUnavailable(
            f"No warehouse at {path} yet: run the training job and score a batch first (`make demo` or the Dagster UI)."
        )
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        raise WarehouseUnavailable(f"The warehouse {path.name} is busy: {BUSY_HINT}") from exc
    try:
        yield con
    finally:
        con.close()


def scored_batches(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """One row per scored batch, newest first: rows, model version, drift score and verdict, realized AUC."""
    drift_columns = ["drift_score", "drift_detected", "retraining", "realized_auc", "estimated_auc", "retraining_outcome"]
    if not table_exists(con, "predictions"):
        return pd.DataFrame(columns=["batch", "rows_scored", "model_version", "scored_at", *drift_columns])
    batches = con.execute(
        "SELECT batch, count(*) AS rows_scored, max(model_version) AS model_version, max(scored_at) AS scored_at "
        "FROM predictions GROUP BY batch ORDER BY scored_at DESC, batch DESC"
    ).df()
    if not table_exists(con, "drift_history"):
        return batches.assign(**{c: None for c in drift_columns})
    drift = con.execute(f"SELECT batch, {', '.join(drift_columns)} FROM drift_history").df()
    return batches.merge(drift, on="batch", how="left")


def value_by_group(con: duckdb.DuckDBPyConnection, batch: str) -> pd.DataFrame:
    """Customers, total and mean business value per execution group of one batch."""
    frame = con.execute("SELECT execution_group, business_value FROM business_value WHERE batch = ?", [batch]).df()
    return group_summary(frame)


def mean_value_per_batch(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Average business value per customer of every batch, oldest first (the gauge's comparison)."""
    return con.execute(
        "SELECT batch, avg(business_value) AS mean_value, max(valued_at) AS valued_at "
        "FROM business_value GROUP BY batch ORDER BY valued_at, batch"
    ).df()


def customers(con: duckdb.DuckDBPyConnection, batch: str, groups: list[int] | None = None, limit: int | None = None) -> pd.DataFrame:
    """A batch's customers by business value, highest first; optionally only some execution groups."""
    where, params = "batch = ?", [batch]
    if groups is not None:
        where += " AND list_contains(?, execution_group)"
        params.append([int(g) for g in groups])
    limit_sql = f"LIMIT {int(limit)}" if limit is not None else ""
    return con.execute(
        f"""
        SELECT key_value, codunicocli, execution_group, business_value, probability, prob_value_contact, monto
        FROM business_value WHERE {where}
        ORDER BY business_value DESC, key_value {limit_sql}
        """,
        params,
    ).df()


def customer_history(con: duckdb.DuckDBPyConnection, identifier: str) -> pd.DataFrame:
    """Every batch a customer (by `key_value` or `codunicocli`) was scored in, newest first."""
    if not table_exists(con, "business_value"):
        return pd.DataFrame()
    return con.execute(
        """
        SELECT batch, key_value, codunicocli, probability, business_value, execution_group, model_version, valued_at
        FROM business_value WHERE key_value = $id OR codunicocli = $id
        ORDER BY valued_at DESC, batch DESC
        """,
        {"id": identifier.strip()},
    ).df()


def drift_history(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """drift_score and model performance of every judged batch, in the order they were judged: the
    label-free AUC estimate beside the realized AUC where labels are known."""
    if not table_exists(con, "drift_history"):
        return pd.DataFrame(columns=["batch", "drift_score", "drift_detected", "judged_at"])
    return con.execute(
        "SELECT batch, drift_score, drift_detected, drifted_columns, features_judged, champion_version AS scored_by, "
        "estimated_auc, realized_auc, estimated_top_decile_positives, realized_top_decile_positives, retraining, "
        "retraining_outcome, reference, judged_at FROM drift_history ORDER BY judged_at, batch"
    ).df()


def top_drifted_columns(con: duckdb.DuckDBPyConnection, batch: str, limit: int = 10) -> pd.DataFrame:
    """The batch's features furthest from the reference (drifted ones first)."""
    if not table_exists(con, "drift_report"):
        return pd.DataFrame()
    return con.execute(
        'SELECT "column", method, score, threshold, drifted FROM drift_report WHERE batch = ? '
        "ORDER BY drifted DESC, score DESC LIMIT ?",
        [batch, limit],
    ).df()
