"""Group `monitoring`: drift and performance of each batch against the champion's evaluation data,
and the outcomes (labels) that arrive after a batch was scored."""

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from dagster_duckdb import DuckDBResource

from mlops_assets import contract, drift, monitoring, scored_features
from mlops_assets.batch_files import batch_path, file_name
from mlops_assets.defs.assets.labels import batch_labels
from mlops_assets.defs.assets.scoring import predictions
from mlops_assets.defs.partitions import inference_batches
from mlops_assets.extracts import load_extract
from mlops_assets.process_memory import release_freed_memory
from mlops_assets.scoring import markdown_table
from mlops_assets.settings import PipelineSettings
from mlops_assets.warehouse import DRIFT_HISTORY_DDL, DRIFT_REPORT_DDL, replace_batch, table_columns, table_exists

GROUP = "monitoring"
TOP_COLUMNS = 10


def _scored_with_labels(con, batch: str) -> tuple[pd.DataFrame, str, str | None]:
    """The batch's scores with the outcome of each row where known: the extract's own `target`, or
    labels that arrived later (`batch_labels`). Also says where labels came from and the content
    hash of that labeled data (a retraining learns from it once)."""
    late = table_exists(con, "batch_labels") and con.execute(
        "SELECT count(*) FROM batch_labels WHERE batch = ?", [batch]
    ).fetchall()[0][0]
    if late:
        scored = con.execute(
            "SELECT p.key_value, coalesce(p.target, l.target) AS target, p.probability, p.model_version FROM predictions p "
            "LEFT JOIN batch_labels l ON l.batch = p.batch AND l.key_value = p.key_value WHERE p.batch = ?",
            [batch],
        ).df()
        file, sha = con.execute("SELECT any_value(labels_file), any_value(labels_sha256) FROM batch_labels WHERE batch = ?", [batch]).fetchall()[0]
        return scored, f"labels file {file}", sha
    scored = con.execute("SELECT key_value, target, probability, model_version FROM predictions WHERE batch = ?", [batch]).df()
    if scored["target"].notna().any():
        return scored, "the extract's target column", _scored_content(con, batch)
    return scored, "none yet", None


def _scored_content(con, batch: str) -> str:
    """SHA-256 of the file content the batch's current predictions were made from."""
    [(sha,)] = con.execute("SELECT content_sha256 FROM inference_log WHERE batch = ? ORDER BY finished_at DESC LIMIT 1", [batch]).fetchall()
    return sha


def _retraining_outcome(con, batch: str) -> str | None:
    """What an earlier retraining for this batch came to; judging the batch again keeps it."""
    if "retraining_outcome" not in table_columns(con, "drift_history"):
        return None
    rows = con.execute("SELECT retraining_outcome FROM drift_history WHERE batch = ?", [batch]).fetchall()
    return rows[0][0] if rows else None


def _reference_version(con, scoring_version: int) -> int:
    """The version whose reference a batch is judged against: the one that scored it (a warehouse
    from before references were kept per version has only the newest champion's)."""
    kept = {v for (v,) in con.execute("SELECT DISTINCT model_version FROM drift_reference").fetchall()}
    return scoring_version if scoring_version in kept else max(kept)


def _reference_description(con, version: int) -> str:
    """What the batch is compared with, in words: the champion's evaluation rows."""
    if table_exists(con, "champion"):
        rows = con.execute("SELECT reference FROM champion WHERE version = ? ORDER BY promoted_at DESC LIMIT 1", [version]).fetchall()
        if rows:
            return f"champion v{version}'s evaluation data: {rows[0][0]}"
    return f"champion v{version}'s reference rows"


@dg.asset(
    group_name=GROUP, partitions_def=inference_batches, pool="duckdb", kinds={"duckdb"}, deps=[predictions, batch_labels]
)
def drift_report(context: dg.AssetExecutionContext, settings: PipelineSettings, warehouse: DuckDBResource) -> dg.MaterializeResult:
    """Per-feature drift of the batch against the evaluation rows of the version that scored it (all rows, evidently's
    default test per column), the `drift_score` share, score drift, a label-free estimate of the
    scoring model's ROC AUC and top-decile positives, realized metrics once labels are known (in the
    extract or arrived later), and whether retraining is due. Writes `drift_report`,
    `drift_history`, `drift_flag.txt`."""
    from mlops_assets import training

    batch = context.partition_key
    path = batch_path(settings.inference_dir, batch)
    with warehouse.get_connection() as con:
        scored, labels_source, labeled_sha = _scored_with_labels(con, batch)
        scoring_version = int(scored["model_version"].iloc[0])
        scoring_auc = con.execute("SELECT roc_auc FROM model WHERE version = ?", [scoring_version]).fetchall()[0][0]
        reference_version = _reference_version(con, scoring_version)
        reference = con.sql(
            f"SELECT {', '.join(contract.MODEL_FEATURES)} FROM drift_reference WHERE model_version = $v", params={"v": reference_version}
        ).to_arrow_table()
        reference_text = _reference_description(con, reference_version)
        reference_scores = con.execute(
            "SELECT probability FROM score_reference WHERE model_version = ?", [reference_version]
        ).fetchnumpy()["probability"]
        learned_from_batch = table_exists(con, "model_data") and con.execute(
            "SELECT count(*) FROM model_data WHERE version = ? AND role = 'train' AND file_name = ?", [scoring_version, file_name(batch)]
        ).fetchall()[0][0] > 0
        earlier_outcome = _retraining_outcome(con, batch)
        staged = settings.scored_features_file(batch)
        current = scored_features.take(staged, _scored_content(con, batch))
        if current is None:  # judged again later (labels arrived), or a warehouse from before staging
            _, current = load_extract(con, path, with_target=False, max_invalid_share=settings.max_invalid_share)
    probability = scored["probability"].to_numpy()
    target = scored["target"].to_numpy(dtype=np.float64)
    if learned_from_batch:  # a model is only measured on rows it did not learn from: the held-out part
        target = np.where(training.held_out(scored["key_value"], seed=settings.random_seed, share=settings.holdout_share), target, np.nan)
        labels_source += f" (held-out {settings.holdout_share:.0%} only: v{scoring_version} learned from the rest)"
    realized = monitoring.realized_performance(target, probability)
    has_labels = labeled_sha is not None
    estimated_auc = training.expected_roc_auc(probability)
    estimated_top = training.expected_top_decile_positives(probability)

    results = drift.table_drift(reference, current, contract.MODEL_FEATURES, contract.CATEGORICAL_FEATURES)
    score = drift.drift_share(results)
    score_drift = drift.wasserstein_normed(np.sort(reference_scores), np.sort(probability))
    realized_auc = realized["roc_auc"] if realized else None
    verdict = monitoring.retraining_verdict(
        score, settings.drift_threshold, realized_auc, scoring_auc, settings.auc_drop_tolerance, has_labels
    )
    detected = score > settings.drift_threshold
    columns = pd.DataFrame([r.__dict__ for r in results]).assign(batch=batch, champion_version=reference_version)
    history = pd.DataFrame(
        [
            {
                "batch": batch,
                "drift_score": score,
                "drifted_columns": int(columns["drifted"].sum()),
                "features_judged": len(results),
                "drift_detected": detected,
                "champion_version": scoring_version,
                "champion_test_auc": scoring_auc,
                "realized_auc": realized_auc,
                "concept_drift": verdict.concept_drift,
                "score_drift": score_drift,
                "has_labels": has_labels,
                "retraining": verdict.reason,
                "reference_rows": reference.num_rows,
                "current_rows": current.num_rows,
                "judged_at": dt.datetime.now(),
                "reference": reference_text,
                "labels_source": labels_source,
                "labeled_rows": int(realized["labeled_rows"]) if realized else 0,
                "estimated_auc": estimated_auc,
                "estimated_top_decile_positives": estimated_top,
                "realized_top_decile_positives": int(realized["top_decile_positives"]) if realized else None,
                "realized_lift": realized["top_decile_lift"] if realized else None,
                "realized_calibration_error": realized["calibration_error"] if realized else None,
                "retraining_outcome": earlier_outcome,
            }
        ]
    )
    with warehouse.get_connection() as con:
        replace_batch(con, "drift_report", DRIFT_REPORT_DDL, batch, columns)
        replace_batch(con, "drift_history", DRIFT_HISTORY_DDL, batch, history)
    settings.drift_flag_file.parent.mkdir(parents=True, exist_ok=True)
    settings.drift_flag_file.write_text("1\n" if detected else "0\n")
    _write_report_samples(settings, batch, reference, current)
    staged.unlink(missing_ok=True)

    top = columns.sort_values("score", ascending=False).head(TOP_COLUMNS)[["column", "method", "score", "drifted"]]
    return dg.MaterializeResult(
        metadata={
            "drift_score": dg.MetadataValue.float(score),
            "drift_detected": detected,
            "drifted_columns": int(columns["drifted"].sum()),
            "features_judged": len(results),
            "top_drifted_columns": dg.MetadataValue.md(markdown_table(top)),
            "score_drift": dg.MetadataValue.float(score_drift),
            "estimated_auc": dg.MetadataValue.float(estimated_auc),
            "estimated_top_decile_positives": dg.MetadataValue.float(estimated_top),
            "realized_auc": dg.MetadataValue.float(realized_auc) if realized_auc is not None else "no labels",
            "realized_top_decile_positives": int(realized["top_decile_positives"]) if realized else "no labels",
            "labels_source": labels_source,
            "labeled_data_sha256": labeled_sha or "none",
            "champion_version": scoring_version,
            "reference": reference_text,
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
    release_freed_memory()  # the scoring steps' freed memory, before evidently adds its own
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    folder = settings.batch_report_dir(context.partition_key)
    reference = pd.read_parquet(folder / "sample_reference.parquet")
    current = pd.read_parquet(folder / "sample_current.parquet")
    definition = DataDefinition(
        numerical_columns=list(contract.NUMERIC_FEATURES), categorical_columns=list(contract.CATEGORICAL_FEATURES)
    )
    # the pipeline's own threshold, so the report never says "not detected" for a batch that retrains
    snapshot = Report([DataDriftPreset(drift_share=settings.drift_threshold)]).run(
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
