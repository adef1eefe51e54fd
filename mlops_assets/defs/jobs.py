"""Jobs: named selections of the asset graph."""

import dagster as dg

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.groups("training"),
    description="Load the training window, rebuild features, train and (maybe) promote a model.",
)
