"""The external systems, each behind one resource, all configured from `PipelineSettings`."""


from contextlib import contextmanager

import dagster as dg
from dagster_duckdb import DuckDBResource

from mlops_assets.model_registry import ensure_experiment
from mlops_assets.settings import PipelineSettings


@dg.resource(
    config_schema={"experiment_name": str, "mlflow_tracking_uri": str, "artifact_location": str},
    description="dagster-mlflow's tracking resource, after making sure the experiment stores artifacts at an absolute path.",
)
def mlflow_tracking(context: dg.InitResourceContext):
    """dagster-mlflow's `MlFlow` (one MLflow run per Dagster run), imported only when a step needs it.

    The asset that trains ends the MLflow run when it succeeds; if the Dagster run fails first,
    teardown marks the MLflow run FAILED so the next run in this process starts clean.
    """
    import mlflow
    from dagster_mlflow.resources import MlFlow

    config = context.resource_config
    ensure_experiment(config["mlflow_tracking_uri"], config["experiment_name"], config["artifact_location"])
    try:
        yield MlFlow(context)
    finally:
        if mlflow.active_run() is not None:
            mlflow.end_run(status="FAILED")


class WarehouseResource(DuckDBResource):
    """The DuckDB warehouse file. Unlike its parent, it also closes the connection when the step
    raises, so a failed step in a long-lived process does not keep the file locked."""

    @contextmanager
    def get_connection(self):
        opened = super().get_connection()
        connection = opened.__enter__()
        try:
            yield connection
        finally:
            opened.__exit__(None, None, None)


def build_resources(settings: PipelineSettings) -> dict:
    """The warehouse, MLflow and settings resources, all derived from one settings object."""
    return {
        "settings": settings,
        "warehouse": WarehouseResource(database=settings.warehouse_file),
        "mlflow": mlflow_tracking.configured(
            {
                "experiment_name": settings.mlflow_experiment,
                "mlflow_tracking_uri": settings.tracking_uri,
                "artifact_location": settings.artifact_location,
            }
        ),
    }
