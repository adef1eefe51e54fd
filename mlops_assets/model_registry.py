"""MLflow as the model store: logging a trained pipeline, the `champion` alias, the pipeline as bytes.

mlflow is imported inside the functions: importing it costs seconds, and most processes that
load the code location (webserver, daemon, scoring runs before a model is needed) never use it.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

CHAMPION_ALIAS = "champion"

SKOPS_TRUSTED_TYPES = [
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
]
"""The pipeline is stored with skops (MLflow's safe default, no pickle); these are the types it
must trust to load a HistGradientBoosting pipeline, and only models this project logged use them."""


def ensure_experiment(tracking_uri: str, name: str, artifact_location: str) -> str:
    """Create the experiment with an absolute artifact location (MLflow's default is relative to cwd)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location or None)


def pip_requirements() -> list[str]:
    """Exact versions of what the pickled pipeline needs; spares MLflow ~13 s of inference."""
    import numpy
    import pandas
    import sklearn

    return [f"scikit-learn=={sklearn.__version__}", f"pandas=={pandas.__version__}", f"numpy=={numpy.__version__}"]


@dataclasses.dataclass(frozen=True)
class LoggedModel:
    version: int
    run_id: str
    model_uri: str


def log_and_register(
    mlflow: Any,
    pipeline: Any,
    *,
    registered_model_name: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    input_example: "pd.DataFrame",
    output_example: Any,
) -> LoggedModel:
    """Log params, metrics and the model (with signature) in the active run; register a new version.

    `mlflow` is the active-run handle (the dagster-mlflow resource or the `mlflow` module).
    """
    from mlflow.models import infer_signature

    mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
    mlflow.log_metrics(metrics)
    info = mlflow.sklearn.log_model(
        pipeline,
        name="model",
        registered_model_name=registered_model_name,
        signature=infer_signature(input_example, output_example),
        input_example=input_example,
        pip_requirements=pip_requirements(),
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
    )
    version = int(info.registered_model_version)
    return LoggedModel(version, info.run_id, f"models:/{registered_model_name}/{version}")


def promote(tracking_uri: str, name: str, version: int) -> None:
    import mlflow

    mlflow.MlflowClient(tracking_uri=tracking_uri).set_registered_model_alias(name, CHAMPION_ALIAS, str(version))


def serialize(pipeline: Any) -> bytes:
    """The pipeline as skops bytes, the same format MLflow stores; kept beside the version in the
    warehouse so scoring loads the champion without importing MLflow (~11 s per run measured)."""
    import skops.io

    return skops.io.dumps(pipeline)


def deserialize(data: bytes) -> Any:
    import skops.io

    return skops.io.loads(data, trusted=SKOPS_TRUSTED_TYPES)


def log_candidate(mlflow: Any, name: str, params: dict[str, Any], metrics: dict[str, float]) -> str:
    """One candidate training set as a nested run under the active run; returns its run id."""
    import mlflow as mlflow_module

    with mlflow_module.start_run(run_name=name, nested=True) as run:
        mlflow_module.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow_module.log_metrics(metrics)
    return run.info.run_id


def log_data_files(mlflow: Any, files: list[dict[str, Any]], context: str) -> None:
    """Record files as the active run's dataset inputs by content hash (`context`: training or
    evaluation), so the MLflow run names exactly what the model learned from."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    for item in files:
        with warnings.catch_warnings():  # MLflow registers its local-file source twice and warns it picked one
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(item["uri"])
        dataset = MetaDataset(source, name=item["file_name"], digest=item["sha256"][:32])
        mlflow.log_input(dataset, context=context, tags={"sha256": item["sha256"], "rows": str(item["rows"])})


def restore_alias(tracking_uri: str, name: str, version: int | None) -> None:
    """Put the `champion` alias back where it was (after a promotion that could not be committed)."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    if version is None:
        client.delete_registered_model_alias(name, CHAMPION_ALIAS)
    else:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, str(version))


def alias_version(tracking_uri: str, name: str) -> int | None:
    """The version MLflow's `champion` alias points at, or None."""
    import mlflow

    try:
        return int(mlflow.MlflowClient(tracking_uri=tracking_uri).get_model_version_by_alias(name, CHAMPION_ALIAS).version)
    except mlflow.exceptions.MlflowException:
        return None
