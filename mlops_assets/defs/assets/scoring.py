"""Group `scoring`: predictions and business_value, one partition per inference extract."""

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import numpy as np
import pyarrow as pa
from dagster_duckdb import DuckDBResource

from mlops_assets import contract, inference_folder, model_registry, scored_features
from mlops_assets.batch_files import batch_path
from mlops_assets.defs.assets.training import champion as champion_asset, extract_failure
from mlops_assets.defs.partitions import inference_batches
from mlops_assets.extracts import ExtractError, load_extract
from mlops_assets.scoring import business_value as value_of, execution_groups, group_summary, markdown_table
from mlops_assets.settings import PipelineSettings
from mlops_assets.warehouse import BUSINESS_VALUE_DDL, INFERENCE_LOG_DDL, PREDICTIONS_DDL, champion, replace_batch

GROUP = "scoring"
PREDICTION_COLUMNS = ("partition", "key_value", "codunicocli", "p_fecinformacion", *contract.BUSINESS_COLUMNS, contract.TARGET)
"""Carried from the extract into `predictions`: trace columns, business inputs and the label if present."""


@dg.asset(
    group_name=GROUP,
    partitions_def=inference_batches,
    pool="duckdb",
    kinds={"sklearn", "duckdb"},
    deps=[champion_asset],
    check_specs=[
        dg.AssetCheckSpec("scored_exactly_once", asset="predictions", description="every batch row once, no key missing"),
        dg.AssetCheckSpec("probabilities_in_unit_interval", asset="predictions"),
    ],
)
def predictions(
    context: dg.AssetExecutionContext, settings: PipelineSettings, warehouse: DuckDBResource
) -> dg.MaterializeResult:
    """The batch scored by the current champion: one row per customer with its probability, the
    top-decile label, the model version and trace columns. Re-scoring replaces only this batch's rows.
    A file that fails validation is moved to `rejected/` with a reason and nothing is written."""
    started, clock = dt.datetime.now(), time.perf_counter()
    batch = context.partition_key
    path = batch_path(settings.inference_dir, batch)
    if not path.is_file():
        raise dg.Failure(description=f"{path} does not exist (moved to rejected/ or deleted?); nothing was scored")
    with warehouse.get_connection() as con, ThreadPoolExecutor(max_workers=1) as loader:
        current = champion(con)
        # importing scikit-learn and skops and unpacking the model take seconds: done while DuckDB reads the file
        model = loader.submit(model_registry.deserialize, current.pipeline_skops) if current else None
        try:
            check, table = load_extract(con, path, with_target=False, max_invalid_share=settings.max_invalid_share)
        except ExtractError as exc:
            inference_folder.reject(path, exc.problem)
            raise extract_failure(exc) from exc
    if current is None:
        raise dg.Failure(description="there is no champion model yet: run training_job (raw_training, features, model, champion) first")
    version, threshold = current.version, current.decision_threshold
    pipeline = model.result()
    from mlops_assets import training  # scikit-learn is imported only by steps that score (here: by the loader)

    model_columns = table.select(list(contract.MODEL_FEATURES))
    probability = training.predict_positive(pipeline, model_columns)
    unseen = {k: n for k, n in check.categories.items() if k not in training.known_categories(pipeline)}
    predicted = probability >= threshold
    scored = table.select(list(PREDICTION_COLUMNS))  # Arrow into DuckDB: the batch's columns are not copied
    for name, value in {
        "batch": batch,
        "source_file": path.name,
        "probability": probability,
        "predicted_label": predicted,
        "decision_threshold": threshold,
        "model_version": version,
        "scored_at": started,
    }.items():
        scored = scored.append_column(name, pa.array(value if isinstance(value, np.ndarray) else [value] * scored.num_rows))
    log_row = {
        "batch": batch,
        "file_name": path.name,
        "file_size_bytes": check.size_bytes,
        "content_sha256": check.sha256,
        "rows_read": check.rows,
        "rows_scored": len(scored),
        "rows_rejected": check.duplicate_keys,
        "values_nulled": sum(check.invalid_values.values()),
        "unseen_category_rows": sum(unseen.values()),
        "model_version": version,
        "dagster_run_id": context.run.run_id,
        "started_at": started,
        "finished_at": dt.datetime.now(),
        "duration_seconds": time.perf_counter() - clock,
    }
    with warehouse.get_connection() as con:
        stored = replace_batch(con, "predictions", PREDICTIONS_DDL, batch, scored, log=("inference_log", INFERENCE_LOG_DDL, log_row))
        keys, distinct, outside = con.execute(
            "SELECT count(key_value), count(DISTINCT key_value), count(*) FILTER (WHERE NOT probability BETWEEN 0 AND 1 OR probability IS NULL) "
            "FROM predictions WHERE batch = ?",
            [batch],
        ).fetchall()[0]
    # after the warehouse's commit: a staged file only exists for predictions that were stored
    scored_features.stage(settings.scored_features_file(batch), model_columns, check.sha256)
    if check.extra_columns:
        context.log.warning(f"{path.name}: ignored columns not in the contract: {', '.join(check.extra_columns)}")
    expected = check.rows - check.duplicate_keys
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": stored,
            "rows_read": check.rows,
            "rows_rejected": check.duplicate_keys,
            "rejected_reason": "duplicate key_value (first row kept)" if check.duplicate_keys else "none",
            "mean_probability": float(probability.mean()),
            "predicted_positives": int(predicted.sum()),
            "decision_threshold": threshold,
            "model_version": version,
            "has_labels": bool(check.has_target),
            "ignored_extra_columns": list(check.extra_columns),
            "non_numeric_values_nulled": check.invalid_values,
            "unseen_categories": unseen,
            "source_file": path.name,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="scored_exactly_once",
                passed=stored == keys == distinct == expected,
                metadata={"rows_expected": expected, "rows_stored": stored, "distinct_keys": distinct},
            ),
            dg.AssetCheckResult(
                check_name="probabilities_in_unit_interval", passed=outside == 0, metadata={"rows_outside": outside}
            ),
        ],
    )


@dg.asset(
    group_name=GROUP,
    partitions_def=inference_batches,
    pool="duckdb",
    kinds={"duckdb"},
    deps=[predictions],
    check_specs=[dg.AssetCheckSpec("business_value_never_nan", asset="business_value")],
)
def business_value(context: dg.AssetExecutionContext, warehouse: DuckDBResource) -> dg.MaterializeResult:
    """Per customer `probability x prob_value_contact x ln(monto)` and an execution group 1..10
    (1 = most valuable tenth). Missing contact probability: batch median; monto missing or < 1: ln = 0."""
    batch = context.partition_key
    with warehouse.get_connection() as con:
        scored = con.execute(
            "SELECT key_value, codunicocli, probability, prob_value_contact, monto, model_version "
            "FROM predictions WHERE batch = ?",
            [batch],
        ).df()
    valuation = value_of(scored["probability"], scored["prob_value_contact"], scored["monto"])
    value = valuation.value
    valued = scored.assign(
        batch=batch,
        business_value=value,
        prob_value_contact=valuation.contact_used,
        prob_value_contact_filled=valuation.contact_filled,
        monto_missing=valuation.monto_missing,
        execution_group=execution_groups(value, tie_breaker=scored["key_value"].to_numpy()),
        valued_at=dt.datetime.now(),
    )
    summary = group_summary(valued)
    with warehouse.get_connection() as con:
        stored = replace_batch(con, "business_value", BUSINESS_VALUE_DDL, batch, valued)
        nan_rows = con.execute(
            "SELECT count(*) FILTER (WHERE business_value IS NULL OR isnan(business_value)) FROM business_value WHERE batch = ?",
            [batch],
        ).fetchall()[0][0]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": stored,
            "value_by_execution_group": dg.MetadataValue.md(markdown_table(summary)),
            "batch_total_value": float(value.sum()),
            "mean_value_per_customer": float(value.mean()) if len(value) else 0.0,
            "prob_value_contact_filled_with_median": int(valuation.contact_filled.sum()),
            "monto_missing": int(valuation.monto_missing.sum()),
            "model_version": int(scored["model_version"].iloc[0]) if len(scored) else None,
        },
        check_results=[
            dg.AssetCheckResult(check_name="business_value_never_nan", passed=nan_rows == 0, metadata={"nan_rows": nan_rows})
        ],
    )
