"""Two runs writing the warehouse at once, under the real daemon: the `duckdb` pool serializes their
steps; and a reader polling meanwhile, as the campaign app does, sees whole batches or "busy"."""

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.app import reader
from mlops_assets_tests.conftest import TEST_ROWS, make_settings, sql
from mlops_assets_tests.dagster_dev import REPO, running_dagster_dev, wait_for
from mlops_assets_tests.test_cli import cli_env

pytestmark = pytest.mark.slow


def launch_together(env: dict[str, str], *launches: list[str]) -> None:
    """`dagster job launch` for each argument list at once, so the runs are queued within a moment
    of each other and are in flight at the same time."""
    processes = [
        subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster"), "job", "launch", "-m", "mlops_assets.definitions", *args],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        for args in launches
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr.decode()[-2000:]


class PollingReader(threading.Thread):
    """Reads the batch's row count every 0.2 s through the app's short read-only connections."""

    def __init__(self, warehouse: str):
        super().__init__(daemon=True)
        self.warehouse, self.outcomes, self.stop = warehouse, [], threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            try:
                with reader.open_warehouse(self.warehouse) as con:
                    self.outcomes.append(("read", int(reader.scored_batches(con)["rows_scored"].sum())))
            except reader.WarehouseUnavailable:
                self.outcomes.append(("busy", None))
            except Exception as exc:  # anything else is a bug the user would see as a stack trace
                self.outcomes.append(("error", repr(exc)))


def test_training_and_scoring_runs_at_the_same_time_both_succeed(tmp_path, trained):
    data = tmp_path / "data"
    shutil.copytree(trained.settings.data_dir, data)
    env = cli_env(data, tmp_path / "dagster_home")
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        instance.add_dynamic_partitions("inference_batches", ["p5_extrac"])
        # p5 counts as scored history, so the inference sensor starts no run of its own: the test
        # runs exactly the two runs it launches
        instance.report_runless_asset_event(dg.AssetMaterialization("predictions", partition="p5_extrac"))
    polling = PollingReader(str(data / "warehouse.duckdb"))
    with running_dagster_dev(env, tmp_path / "dagster_dev.log"):
        polling.start()
        launch_together(env, ["-j", "training_job"], ["-j", "batch_job", "--tags", '{"dagster/partition": "p5_extrac"}'])

        def finished():
            with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
                runs = instance.get_runs()
                done = [r for r in runs if r.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)]
                return runs if len(runs) == 2 and len(done) == len(runs) else None

        runs = wait_for(finished, timeout=400, interval=2, what="both runs finished")
        polling.stop.set()
        polling.join()
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            logs = [record.message or "" for run in runs for record in instance.all_logs(run.run_id)]
            records = {record.dagster_run.job_name: record for record in instance.get_run_records()}
    assert sorted((r.job_name, r.status) for r in runs) == [
        ("batch_job", dg.DagsterRunStatus.SUCCESS), ("training_job", dg.DagsterRunStatus.SUCCESS)]
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        assert len(instance.get_runs()) == 2  # and no other run started meanwhile
    assert not [m for m in logs if "lock" in m.lower() and "conflict" in m.lower()]
    # in flight together: each was queued before the other ended. Whether their steps interleave is the
    # run queue's call: it holds a queued run while the other run's step has the `duckdb` pool slot
    training, batch = records["training_job"], records["batch_job"]
    assert training.create_timestamp.timestamp() < batch.end_time and batch.create_timestamp.timestamp() < training.end_time
    kinds = {kind for kind, _ in polling.outcomes}
    assert "error" not in kinds, [o for o in polling.outcomes if o[0] == "error"][:3]
    assert kinds == {"read", "busy"}  # readers get in between the steps' writes, and are told when they cannot
    assert {rows for kind, rows in polling.outcomes if kind == "read"} <= {0, TEST_ROWS}  # never a partial batch
    settings = make_settings(data)
    assert sql(settings, "SELECT count(*) FROM raw_training") == [(4 * TEST_ROWS,)]
    assert sql(settings, "SELECT batch, count(*) FROM predictions GROUP BY 1") == [("p5_extrac", TEST_ROWS)]
    assert sql(settings, "SELECT count(*) FROM model") == [(2,)]
