"""Group `monitoring`: drift of each batch against the champion's training data."""

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from dagster_duckdb import DuckDBResource

from mlops_assets import contract, drift, monitoring
from mlops_assets.defs.assets.scoring import predictions
from mlops_assets.defs.partitions import inference_batches
from mlops_assets.extracts import load_extract
from mlops_assets.scoring import markdown_table
from mlops_assets.settings import PipelineSettings
from mlops_assets.warehouse import DRIFT_HISTORY_DDL, DRIFT_REPORT_DDL, replace_batch

GROUP = "monitoring"
TOP_COLUMNS = 10


@dg.asset(group_name=GROUP, partitions_def=inference_batches, pool="duckdb", kinds={"duckdb"}, deps=[predictions])
def drift_report(context: dg.AssetExecutionContext, settings: PipelineSettings, warehouse: DuckDBResource) -> dg.MaterializeResult:
    """Per-feature drift of the batch against the champion's training rows (all rows, evidently's
    default test per column), the `drift_score` share, score drift, realized AUC when labels are
    present, and whether retraining is due. Writes `drift_report`, `drift_history`, `drift_flag.txt`."""
    batch = context.partition_key
    path = settings.inference_dir / f"{batch}.csv"
    with warehouse.get_connection() as con:
        reference = con.sql(f"SELECT {', '.join(contract.MODEL_FEATURES)} FROM drift_reference").to_arrow_table()
        champion = con.execute("SELECT any_value(model_version) FROM drift_reference").fetchall()[0][0]
        champion_auc = con.execute("SELECT roc_auc FROM model WHERE version = ?", [champion]).fetchall()[0][0]
        reference_scores = con.execute("SELECT probability FROM score_reference").fetchnumpy()["probability"]
        scored = con.execute("SELECT target, probability FROM predictions WHERE batch = ?", [batch]).df()
        _, current = load_extract(con, path, with_target=False, max_invalid_share=settings.max_invalid_share)
    has_labels = bool(scored["target"].notna().all())

    results = drift.table_drift(reference, current, contract.MODEL_FEATURES, contract.CATEGORICAL_FEATURES)
    score = drift.drift_share(results)
    score_drift = drift.wasserstein_normed(np.sort(reference_scores), np.sort(scored["probability"].to_numpy()))
    realized = monitoring.realized_auc(scored["target"].to_numpy(dtype=np.float64), scored["probability"].to_numpy())
    verdict = monitoring.retraining_verdict(
        score, settings.drift_threshold, realized, champion_auc, settings.auc_drop_tolerance, has_labels
    )
    detected = score > settings.drift_threshold
    columns = pd.DataFrame([r.__dict__ for r in results]).assign(batch=batch, champion_version=champion)
    history = pd.DataFrame(
        [
            {
                "batch": batch,
                "drift_score": score,
                "drifted_columns": int(columns["drifted"].sum()),
                "features_judged": len(results),
                "drift_detected": detected,
                "champion_version": champion,
                "champion_test_auc": champion_auc,
                "realized_auc": realized,
                "concept_drift": verdict.concept_drift,
                "score_drift": score_drift,
                "has_labels": has_labels,
                "retraining": verdict.reason,
                "reference_rows": reference.num_rows,
                "current_rows": current.num_rows,
                "judged_at": dt.datetime.now(),
            }
        ]
    )
    with warehouse.get_connection() as con:
        replace_batch(con, "drift_report", DRIFT_REPORT_DDL, batch, columns)
        replace_batch(con, "drift_history", DRIFT_HISTORY_DDL, batch, history)
    settings.drift_flag_file.parent.mkdir(parents=True, exist_ok=True)
    settings.drift_flag_file.write_text("1\n" if detected else "0\n")
    _write_report_samples(settings, batch, reference, current)

    top = columns.sort_values("score", ascending=False).head(TOP_COLUMNS)[["column", "method", "score", "drifted"]]
    return dg.MaterializeResult(
        metadata={
            "drift_score": dg.MetadataValue.float(score),
            "drift_detected": detected,
            "drifted_columns": int(columns["drifted"].sum()),
            "features_judged": len(results),
            "top_drifted_columns": dg.MetadataValue.md(markdown_table(top)),
            "score_drift": dg.MetadataValue.float(score_drift),
            "realized_auc": dg.MetadataValue.float(realized) if realized is not None else "no labels",
            "champion_version": champion,
            "retraining_due": verdict.due,
            "retraining_possible": verdict.possible,
            "retraining": verdict.reason,
            "reference_rows": reference.num_rows,
            "current_rows": current.num_rows,
            "html_report": str(settings.batch_report_dir(batch) / "drift_report.html"),
        }
    )


def _write_report_samples(settings: PipelineSettings, batch: str, reference: pa.Table, current: pa.Table) -> None:
    """Random samples for evidently's HTML report, so that step needs no warehouse connection and
    stays out of the `duckdb` pool while evidently works for ~20 s."""
    folder = settings.batch_report_dir(batch)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(settings.random_seed)
    for name, table in (("reference", reference), ("current", current.select(list(contract.MODEL_FEATURES)))):
        rows = np.sort(rng.choice(table.num_rows, min(settings.report_sample_rows, table.num_rows), replace=False))
        pq.write_table(table.take(rows), folder / f"sample_{name}.parquet")


@dg.asset(group_name=GROUP, partitions_def=inference_batches, kinds={"evidently"}, deps=[drift_report])
def drift_report_html(context: dg.AssetExecutionContext, settings: PipelineSettings) -> dg.MaterializeResult:
    """evidently's own DataDriftPreset report (HTML + JSON) under `data/monitoring_reports/<batch>/`,
    for people to read. It runs on the random samples `drift_report` wrote (`report_sample_rows` per
    side) because the full report takes ~15 minutes at production size; the retraining decision is
    `drift_report`'s, on all rows."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    folder = settings.batch_report_dir(context.partition_key)
    reference = pd.read_parquet(folder / "sample_reference.parquet")
    current = pd.read_parquet(folder / "sample_current.parquet")
    definition = DataDefinition(
        numerical_columns=list(contract.NUMERIC_FEATURES), categorical_columns=list(contract.CATEGORICAL_FEATURES)
    )
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition), Dataset.from_pandas(reference, data_definition=definition)
    )
    note = (
        f"SAMPLED REPORT: {len(reference):,} reference rows and {len(current):,} batch rows drawn at random "
        f"(seed {settings.random_seed}). The drift decision (table drift_report) uses all rows."
    )
    html = snapshot.get_html_str(as_iframe=False)
    banner = f'<div style="background:#fff3cd;padding:12px;font:16px sans-serif"><b>{note}</b></div>'
    html_path, json_path = folder / "drift_report.html", folder / "drift_report.json"
    html_path.write_text(html.replace("<body>", "<body>" + banner, 1) if "<body>" in html else banner + html)
    snapshot.save_json(str(json_path))
    return dg.MaterializeResult(
        metadata={
            "html_report": dg.MetadataValue.path(str(html_path)),
            "json_report": dg.MetadataValue.path(str(json_path)),
            "sample": note,
            "reference_sample_rows": len(reference),
            "current_sample_rows": len(current),
        }
    )
