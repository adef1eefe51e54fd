"""The code location: assets, checks, jobs, sensors and resources, assembled from `defs/`."""

import dagster as dg

from mlops_assets.defs import checks, jobs, sensors
from mlops_assets.defs.assets import labels, monitoring, scoring, training
from mlops_assets.defs.resources import build_resources
from mlops_assets.settings import PipelineSettings


def build_definitions(settings: PipelineSettings) -> dg.Definitions:
    """The whole code location wired to `settings`; tests build theirs on temporary folders."""
    return dg.Definitions(
        assets=dg.load_assets_from_modules([training, scoring, labels, monitoring]),
        asset_checks=dg.load_asset_checks_from_modules([checks]),
        jobs=[jobs.training_job, jobs.batch_job, jobs.labels_job],
        sensors=[sensors.inference_folder_sensor, sensors.labels_sensor, sensors.drift_retrain_sensor, sensors.missed_retry_sensor],
        resources=build_resources(settings),
        executor=dg.in_process_executor,
    )


defs = build_definitions(PipelineSettings.from_env())
