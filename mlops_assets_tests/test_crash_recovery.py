"""Crash recovery under `dagster dev`: every process is killed (SIGKILL) at several points of the
loop (scoring, drift, retraining, rescoring) and started again, with nobody cancelling runs.

Run monitoring (with the worker health check of `mlops_assets.run_launcher`) must mark each dead
run failed and free its pool slot, run retries must finish its work, files dropped while the
pipeline was down must be scored, and in the end every batch is scored exactly once, no run is
left in progress and the warehouse agrees with the Dagster instance."""

import time

import dagster as dg
import duckdb
import pytest
from dagster._core.events import DagsterEventType

from mlops_assets.defs.sensors import RESCORED_BY_TAG, RETRAIN_BATCH_TAG
from mlops_assets.sample_data import generate_month, write_extract
from mlops_assets.settings import PipelineSettings
from mlops_assets_tests.dagster_dev import dagster_dev_process, kill_session, wait_for
from mlops_assets_tests.test_cli import trained_deployment

RECOVERY_SECONDS = 300
"""From the restart, the dead run must be failed and its work done again within this: a bound that
says the loop hangs, not a speed target (25-33 s on a quiet machine, as the README says; the test
prints the seconds, and the benchmark measures speed). 120 s was missed on a busy 2-core machine."""
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]
"""Each of the five starts is bounded on its own (RECOVERY_SECONDS and the waits in Deployment.run);
the suite's 600 s for the whole test was passed in CI at the fourth start, with every stage within
its bound (172 s on a quiet machine, 386 s in a slow hour here with a 10 s monitoring poll)."""
IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
BATCH_ASSETS = ("predictions", "business_value", "drift_report")


def _runs(home: str, tags: dict[str, str], statuses=None) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(home) as instance:
        return list(instance.get_runs(dg.RunsFilter(tags=tags, statuses=statuses or [])))


def _run_in_step(instance: dg.DagsterInstance, tags: dict[str, str], step: str) -> dg.DagsterRun | None:
    """A run with `tags`, still in progress, that has started `step` (the kill lands in that step or
    in one after it: a scoring run goes on to evidently's report, a training run to the champion)."""
    for run in instance.get_runs(dg.RunsFilter(tags=tags, statuses=[dg.DagsterRunStatus.STARTED])):
        if any(r.dagster_event.step_key == step for r in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_START)):
            return run
    return None


def _materialized(home: str, batch: str) -> bool:
    with dg.DagsterInstance.from_config(home) as instance:
        return all(batch in instance.get_materialized_partitions(dg.AssetKey(a)) for a in BATCH_ASSETS)


def _failure_reason(home: str, run_id: str) -> str:
    with dg.DagsterInstance.from_config(home) as instance:
        return " ".join(r.dagster_event.message or "" for r in instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE))


class Deployment:
    """`dagster dev` on one DAGSTER_HOME, killed and started again by the test."""

    def __init__(self, env, logs):
        self.env, self.logs, self.starts = env, logs, 0
        self.home = env["DAGSTER_HOME"]

    def run(self, dead=None, before=None, until=None, kill_at=None) -> tuple[float | None, dg.DagsterRun | None]:
        """Start dagster dev; `dead` (the run a kill left behind) must be failed with a reason and
        `until` reached within RECOVERY_SECONDS of the start. Then kill everything once a run with
        `kill_at` = (tags, step) is in that step, or else wait until no run is in progress."""
        self.starts += 1
        started, seconds, victim = time.monotonic(), None, None
        with dagster_dev_process(self.env, self.logs / f"dagster_dev_{self.starts}.log") as (_, process):
            with dg.DagsterInstance.from_config(self.home) as instance:
                if dead is not None:
                    wait_for(lambda: instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE,
                             RECOVERY_SECONDS, 1, f"dead run {dead.run_id} marked failed")
                    assert "is gone" in _failure_reason(self.home, dead.run_id), _failure_reason(self.home, dead.run_id)
                if before:
                    before()
                if until:
                    wait_for(until, RECOVERY_SECONDS, 1, "the pipeline flowing again")
                    seconds = time.monotonic() - started
                if kill_at:
                    victim = wait_for(lambda: _run_in_step(instance, *kill_at), 300, 0.1, f"a run {kill_at[0]} in {kill_at[1]}")
                else:
                    wait_for(lambda: not _runs(self.home, {}, IN_PROGRESS), 240, 1, "every run finished")
            kill_session(process)
        return seconds, victim


def test_the_loop_recovers_from_a_kill_at_every_stage(tmp_path):
    data, env = trained_deployment(tmp_path)
    settings = PipelineSettings(data_dir=str(data))
    deployment, home = Deployment(env, tmp_path), env["DAGSTER_HOME"]
    drop = lambda month, rows, **kw: write_extract(generate_month(month, rows, seed=31 + month, **kw), settings.inference_dir)  # noqa: E731
    recovered = {}

    # 1. killed while scoring p6; p7 is dropped while everything is down
    _, dead = deployment.run(before=lambda: drop(6, 20_000, with_target=False),
                             kill_at=({"dagster/sensor_name": "inference_folder_sensor"}, "predictions"))
    drop(7, 3_000, with_target=False)
    recovered["scoring"], _ = deployment.run(dead, until=lambda: _materialized(home, "p6_extrac") and _materialized(home, "p7_extrac"))
    # 2. killed while judging the drift of a drifted labeled p8
    _, dead = deployment.run(before=lambda: drop(8, 20_000, drift="numeric_shift", with_target=True),
                             kill_at=({"dagster/partition": "p8_extrac"}, "drift_report"))
    # 3. after the restart the retraining is requested; killed while the challenger trains
    recovered["drift"], dead = deployment.run(dead, until=lambda: _runs(home, {RETRAIN_BATCH_TAG: "p8_extrac"}),
                                              kill_at=({RETRAIN_BATCH_TAG: "p8_extrac"}, "model"))
    # 4. the retried training promotes v2, which rescores p8; killed while rescoring
    recovered["retraining"], dead = deployment.run(dead, until=lambda: _runs(home, {RESCORED_BY_TAG: "2"}),
                                                   kill_at=({RESCORED_BY_TAG: "2"}, "predictions"))
    recovered["rescoring"], _ = deployment.run(dead, until=lambda: _runs(home, {RESCORED_BY_TAG: "2"}, [dg.DagsterRunStatus.SUCCESS]))
    print("seconds from restart to the pipeline flowing again:", {k: round(v) for k, v in recovered.items()})

    # no run left in progress; every dead run failed with the reason
    assert not _runs(home, {}, IN_PROGRESS)
    with duckdb.connect(settings.warehouse_file, read_only=True) as con:
        # every dropped file scored exactly once, by the champion of its time
        assert con.execute(
            "SELECT batch, count(*), count(DISTINCT key_value), min(model_version), max(model_version) FROM predictions GROUP BY 1 ORDER BY 1"
        ).fetchall() == [("p6_extrac", 20_000, 20_000, 1, 1), ("p7_extrac", 3_000, 3_000, 1, 1), ("p8_extrac", 20_000, 20_000, 2, 2)]
        assert con.execute("SELECT batch, count(*) FROM business_value GROUP BY 1 ORDER BY 1").fetchall() == [
            ("p6_extrac", 20_000), ("p7_extrac", 3_000), ("p8_extrac", 20_000)]
        assert con.execute("SELECT batch, champion_version FROM drift_history ORDER BY batch").fetchall() == [
            ("p6_extrac", 1), ("p7_extrac", 1), ("p8_extrac", 2)]
        logged = con.execute("SELECT batch, dagster_run_id, model_version FROM inference_log ORDER BY finished_at").fetchall()
        assert con.execute("SELECT version FROM champion ORDER BY promoted_at").fetchall() == [(1,), (2,)]
    # the warehouse agrees with the Dagster instance: the newest scoring of each batch is the run
    # that materialized its predictions last
    with dg.DagsterInstance.from_config(home) as instance:
        for batch in ("p6_extrac", "p7_extrac", "p8_extrac"):
            latest = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey("predictions"), asset_partitions=[batch]), limit=1
            ).records[0]
            assert [r for r in logged if r[0] == batch][-1][1] == latest.run_id, batch
    # the training folder moved exactly once: p8 in, p1 archived, nothing left staged
    assert sorted(p.name for p in settings.training_dir.iterdir()) == ["p2_extrac.csv", "p3_extrac.csv", "p4_extrac.csv", "p8_extrac.csv"]
    assert [p.name for p in settings.archive_dir.iterdir()] == ["p1_extrac.csv"]
    assert not list(settings.staging_dir.glob("*.csv"))
    assert all(seconds < RECOVERY_SECONDS for seconds in recovered.values()), recovered
