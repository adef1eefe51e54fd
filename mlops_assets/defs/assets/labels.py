"""Group `labels`: outcomes that arrive weeks after a batch was scored (`data/raw/labels/<batch>.csv`)."""

import datetime as dt

import dagster as dg
from dagster_duckdb import DuckDBResource

from mlops_assets import inference_folder
from mlops_assets.batch_files import batch_path
from mlops_assets.defs.assets.scoring import predictions
from mlops_assets.defs.assets.training import extract_failure
from mlops_assets.defs.partitions import inference_batches
from mlops_assets.extracts import ExtractError
from mlops_assets.extracts.sql import sql_literal
from mlops_assets.labels import load_labels
from mlops_assets.settings import PipelineSettings
from mlops_assets.warehouse import BATCH_LABELS_DDL, replace_batch

GROUP = "labels"


@dg.asset(group_name=GROUP, partitions_def=inference_batches, pool="duckdb", kinds={"duckdb"}, deps=[predictions])
def batch_labels(context: dg.AssetExecutionContext, settings: PipelineSettings, warehouse: DuckDBResource) -> dg.MaterializeResult:
    """The outcomes of an already scored batch, checked key by key against its predictions: a file with
    a label that is not 0/1, a repeated key, keys of another batch, or no rows is moved to
    `labels/rejected/` with the reason and nothing is stored. `drift_report` then measures how the
    model that scored each row did, and retraining follows when due."""
    batch = context.partition_key
    path = batch_path(settings.labels_dir, batch)
    if not path.is_file():
        raise dg.Failure(description=f"{path} does not exist (moved to rejected/ or deleted?); no labels were stored")
    keys = f"(SELECT key_value FROM predictions WHERE batch = {sql_literal(batch)})"
    with warehouse.get_connection() as con:
        try:
            check, labels = load_labels(con, path, keys, max_unknown_share=settings.max_invalid_share)
        except ExtractError as exc:
            inference_folder.reject(path, exc.problem)
            raise extract_failure(exc) from exc
        rows = labels.to_pandas().assign(
            batch=batch, labels_file=path.name, labels_sha256=check.sha256, received_at=dt.datetime.now()
        )
        stored = replace_batch(con, "batch_labels", BATCH_LABELS_DDL, batch, rows)
    if check.extra_columns:
        context.log.warning(f"{path.name}: ignored columns {', '.join(check.extra_columns[:10])}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": stored,
            "labels_in_file": check.rows,
            "unknown_keys_ignored": check.unknown_keys,
            "batch_rows_without_label": check.unlabeled_rows,
            "positive_rate": float(rows["target"].mean()) if stored else 0.0,
            "labels_file": path.name,
            "sha256": check.sha256,
        }
    )
