"""`make demo`: sample extracts if none are present, the whole graph materialized, a summary.

Runs are recorded in the Dagster instance at $DAGSTER_HOME, so `make dev` shows them afterwards.
"""

from __future__ import annotations

import argparse
import time

import dagster as dg
import duckdb

from mlops_assets.extracts import list_extracts
from mlops_assets.sample_data import generate_extracts
from mlops_assets.settings import PipelineSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000, help="rows per generated sample extract")
    args = parser.parse_args(argv)

    settings = PipelineSettings.from_env()
    if not list_extracts(settings.training_dir):
        print(f"no extracts in {settings.training_dir}: generating {args.rows:,} rows x 5 months of samples")
        generate_extracts(settings.data_path / "raw", rows=args.rows)

    from mlops_assets.definitions import defs  # after the samples exist: the code location reads the folders

    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def("training_job").execute_in_process(instance=instance, raise_on_error=False)
    if not result.success:
        raise SystemExit("the training job failed; see the Dagster UI (`make dev`) or the log above")
    print(summary(settings, time.perf_counter() - started))


def summary(settings: PipelineSettings, seconds: float) -> str:
    with duckdb.connect(settings.warehouse_file, read_only=True) as con:
        rows = con.execute("SELECT count(*), count(DISTINCT source_file) FROM raw_training").fetchall()[0]
        version, auc, lift, promoted, reason = con.execute(
            "SELECT version, roc_auc, top_decile_lift, promoted, promotion_reason FROM model ORDER BY version DESC LIMIT 1"
        ).fetchall()[0]
    return "\n".join(
        [
            "",
            f"graph materialized in {seconds:.0f} s",
            f"raw_training   {rows[0]:,} rows from {rows[1]} extracts",
            f"model          version {version}: out-of-time ROC AUC {auc:.3f}, top-decile lift {lift:.2f}, "
            f"{'promoted to champion' if promoted else 'not promoted'} ({reason})",
            f"warehouse      {settings.warehouse_file}   (duckdb -readonly {settings.warehouse_file})",
            f"MLflow store   {settings.tracking_uri}   (make mlflow-ui -> http://127.0.0.1:5000)",
            "Dagster UI     make dev -> http://127.0.0.1:3000",
        ]
    )


if __name__ == "__main__":
    main()
