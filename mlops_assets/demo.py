"""`make demo`: sample extracts if none are present, the whole graph materialized, a summary.

Runs are recorded in the Dagster instance at $DAGSTER_HOME, so `make dev` shows them afterwards.
The terminal shows each step with its seconds; Dagster's full log of every run goes to a file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time
import warnings
from pathlib import Path
from typing import TextIO

import dagster as dg
import duckdb
from dagster._core.utils import make_new_run_id

from mlops_assets.batch_files import batch_key
from mlops_assets.defs.partitions import inference_batches
from mlops_assets.inference_folder import candidate_files
from mlops_assets.sample_data import generate_extracts
from mlops_assets.settings import PipelineSettings
from mlops_assets.training_window import window_files


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000, help="rows per generated sample extract")
    args = parser.parse_args(argv)

    warnings.simplefilter("ignore", dg.BetaWarning)  # dagster-mlflow's "in beta" notes; not the user's concern
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    settings = PipelineSettings.from_env()
    if not window_files(settings.training_dir):
        print(f"no extracts in {settings.training_dir}: generating {args.rows:,} rows x 5 months of samples")
        generate_extracts(settings.data_path / "raw", rows=args.rows)

    from mlops_assets.definitions import defs  # after the samples exist: the code location reads the folders

    started = time.perf_counter()
    batches = [batch_key(p) for p in candidate_files(settings.inference_dir)]
    log_path = settings.data_path / "logs" / "demo.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"full Dagster log: {log_path}")
    with dg.DagsterInstance.get() as instance, open(log_path, "w") as log:
        run(defs, instance, "training_job", log)
        if batches:  # the newest extract is the current batch; older ones are history
            instance.add_dynamic_partitions(inference_batches.name, [batches[-1]])
            run(defs, instance, "batch_job", log, partition_key=batches[-1])
    print(summary(settings, batches[-1] if batches else None, time.perf_counter() - started))


QUIET_CONSOLE = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
"""Dagster's console logger prints hundreds of DEBUG lines per run; the terminal shows errors only."""


def run(defs: dg.Definitions, instance: dg.DagsterInstance, job: str, log: TextIO, **kwargs) -> None:
    """Execute `job`, printing each step as it ends and writing every event to `log`."""
    run_id = make_new_run_id()
    print(f"{job} (run {run_id[:8]})")
    instance.add_event_listener(run_id, Progress(log))
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, run_id=run_id, run_config=QUIET_CONSOLE, raise_on_error=False, **kwargs
    )
    if not result.success:
        raise SystemExit(f"{job} failed; the reason is above, the whole run in {Path(log.name)} and in the Dagster UI (`make dev`)")


class Progress:
    """An event listener: one line per finished step on the terminal, every event in the log file."""

    def __init__(self, log: TextIO):
        self.log = log
        self.step_started: dict[str, float] = {}

    def __call__(self, entry) -> None:
        stamp = dt.datetime.fromtimestamp(entry.timestamp).isoformat(timespec="milliseconds")
        self.log.write(f"{stamp} {logging.getLevelName(entry.level)} {entry.step_key or '-'} {entry.message}\n")
        event = entry.dagster_event
        if event is None or not entry.step_key:
            return
        if event.is_step_start:
            self.step_started[entry.step_key] = entry.timestamp
        elif event.is_step_success or event.is_step_failure:
            seconds = entry.timestamp - self.step_started.get(entry.step_key, entry.timestamp)
            outcome = "done" if event.is_step_success else "FAILED"
            print(f"  {entry.step_key:<44} {outcome:<6} {seconds:6.1f} s", flush=True)


def summary(settings: PipelineSettings, batch: str | None, seconds: float) -> str:
    with duckdb.connect(settings.warehouse_file, read_only=True) as con:
        rows = con.execute("SELECT count(*), count(DISTINCT source_file) FROM raw_training").fetchall()[0]
        version, auc, lift, promoted, reason = con.execute(
            "SELECT version, roc_auc, top_decile_lift, promoted, promotion_reason FROM model ORDER BY version DESC LIMIT 1"
        ).fetchall()[0]
        scored = batch and con.execute(
            "SELECT count(*), sum(business_value), count(*) FILTER (WHERE execution_group = 1) "
            "FROM business_value WHERE batch = ?",
            [batch],
        ).fetchall()[0]
        drifted = batch and con.execute(
            "SELECT drift_score, drifted_columns, features_judged, retraining FROM drift_history WHERE batch = ?", [batch]
        ).fetchall()[0]
    lines = [
        "",
        f"graph materialized in {seconds:.0f} s",
        f"raw_training   {rows[0]:,} rows from {rows[1]} extracts",
        f"model          version {version}: out-of-time ROC AUC {auc:.3f}, top-decile lift {lift:.2f}, "
        f"{'promoted to champion' if promoted else 'not promoted'} ({reason})",
    ]
    if scored:
        lines.append(
            f"batch {batch}  {scored[0]:,} customers scored, total business value {scored[1]:,.1f}, "
            f"{scored[2]:,} in execution group 1"
        )
        lines.append(
            f"drift          drift_score {drifted[0]:.3f} ({drifted[1]} of {drifted[2]} features drifted), "
            f"retraining: {drifted[3]}; report in {settings.batch_report_dir(batch)}"
        )
    lines += [
        f"warehouse      {settings.warehouse_file}   (duckdb -readonly {settings.warehouse_file})",
        f"MLflow store   {settings.tracking_uri}   (make mlflow-ui -> http://127.0.0.1:5000)",
        "Dagster UI     make dev -> http://127.0.0.1:3000 (sensors score new files in data/raw/inference/)",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
