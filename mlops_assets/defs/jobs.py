"""Jobs: named selections of the asset graph."""

import dagster as dg

from mlops_assets.defs.partitions import inference_batches

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.groups("training"),
    description="Load the training window, rebuild features, train and (maybe) promote a model.",
)

batch_job = dg.define_asset_job(
    "batch_job",
    selection=dg.AssetSelection.groups("scoring"),
    partitions_def=inference_batches,
    description="Score one inference extract and value its customers (one partition per file).",
)
