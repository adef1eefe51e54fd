"""The external systems, each behind one resource, all configured from `PipelineSettings`."""


import dagster as dg
from dagster_duckdb import DuckDBResource

from mlops_assets.model_registry import ensure_experiment
from mlops_assets.settings import PipelineSettings


@dg.resource(
    config_schema={"experiment_name": str, "mlflow_tracking_uri": str, "artifact_location": str},
    description="dagster-mlflow's tracking resource, after making sure the experiment stores artifacts at an absolute path.",
)
def mlflow_tracking(context: dg.InitResourceContext):
    """dagster-mlflow's `MlFlow` (one MLflow run per Dagster run), imported only when a step needs it."""
    from dagster_mlflow.resources import MlFlow

    config = context.resource_config
    ensure_experiment(config["mlflow_tracking_uri"], config["experiment_name"], config["artifact_location"])
    return MlFlow(context)


def build_resources(settings: PipelineSettings) -> dict:
    """The warehouse, MLflow and settings resources, all derived from one settings object."""
    return {
        "settings": settings,
        "warehouse": DuckDBResource(database=settings.warehouse_file),
        "mlflow": mlflow_tracking.configured(
            {
                "experiment_name": settings.mlflow_experiment,
                "mlflow_tracking_uri": settings.tracking_uri,
                "artifact_location": settings.artifact_location,
            }
        ),
    }
