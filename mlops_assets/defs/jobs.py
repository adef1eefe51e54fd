"""Jobs: named selections of the asset graph."""

import dagster as dg

from mlops_assets.defs.partitions import inference_batches

TRAINING_TABLES_TAG = "mlops/writes_training_tables"
"""On every run of training_job; dagster.yaml lets one such run go at a time."""

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.groups("training"),
    tags={TRAINING_TABLES_TAG: "true"},
    description="Load the training window, rebuild features, train a challenger and promote it only if it is better. "
    "drift_retrain_sensor runs it with `admit_batch` set when a labeled batch drifted; `champion` materializes only on promotion.",
)

batch_job = dg.define_asset_job(
    "batch_job",
    selection=dg.AssetSelection.groups("scoring", "monitoring"),
    partitions_def=inference_batches,
    description="Score one inference extract, value its customers and judge its drift (one partition per file).",
)

labels_job = dg.define_asset_job(
    "labels_job",
    selection=dg.AssetSelection.assets("batch_labels", "drift_report"),
    partitions_def=inference_batches,
    description="Store the outcomes that arrived for a scored batch and judge the batch again with them "
    "(realized AUC, concept drift, retraining). labels_sensor runs it for each file in data/raw/labels/.",
)
