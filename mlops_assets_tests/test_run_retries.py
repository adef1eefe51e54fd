"""The safety net under Dagster's run-retry daemon, on a real instance: a run whose worker died, which
Dagster tagged for a retry, but whose failure the daemon read too early and never retried."""

import dagster as dg
import pytest
from dagster._core.events import DagsterEventType
from dagster._core.storage.tags import AUTO_RETRY_RUN_ID_TAG, PARTITION_NAME_TAG, WILL_RETRY_TAG
from dagster._core.test_utils import create_run_for_test
from dagster._daemon.auto_run_reexecution.event_log_consumer import _create_cursor_key

from mlops_assets import run_retries
from mlops_assets.defs.sensors import RESCORED_BY_TAG, missed_retry_sensor
from mlops_assets.run_launcher import WORKER_HOST_TAG

RESCORING = {PARTITION_NAME_TAG: "p8_extrac", RESCORED_BY_TAG: "2", WORKER_HOST_TAG: "vm", "dagster/run_key": "rescore-p8_extrac-v2"}


@pytest.fixture
def instance():
    with dg.instance_for_test(overrides={"run_retries": {"enabled": True, "max_retries": 2}}) as test_instance:
        yield test_instance


def _dead_rescoring_run(instance) -> dg.DagsterRun:
    run = create_run_for_test(instance, job_name="batch_job", status=dg.DagsterRunStatus.STARTED, tags=RESCORING,
                              asset_selection=frozenset({dg.AssetKey("predictions"), dg.AssetKey("business_value")}))
    instance.report_run_failed(run, "run worker process 4242 is gone (killed, out of memory, or the machine or deployment restarted)")
    return instance.get_run_by_id(run.run_id)


def _daemon_read_every_failure(instance) -> None:
    """What Dagster's event-log consumer leaves behind once it has read the failures (retrying or not)."""
    newest = max(instance.event_log_storage.get_logs_for_all_runs_by_log_id(after_cursor=-1, dagster_event_type={DagsterEventType.RUN_FAILURE}))
    instance.daemon_cursor_storage.set_cursor_values({_create_cursor_key(DagsterEventType.RUN_FAILURE): str(newest)})


def _failed_at(instance, run) -> float:
    [failure] = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_FAILURE)
    return failure.timestamp


def test_a_retry_the_daemon_read_and_did_not_start_is_started_once_with_the_runs_tags(instance):
    run = _dead_rescoring_run(instance)
    assert run.tags[WILL_RETRY_TAG] == "true"  # Dagster promised a retry
    failed = _failed_at(instance, run)
    assert run_retries.missed_retries(instance, failed + 60) == []  # the daemon has not read the failure yet
    _daemon_read_every_failure(instance)
    assert run_retries.missed_retries(instance, failed + 1) == []  # it may still be starting the retry
    [missed] = run_retries.missed_retries(instance, failed + run_retries.RETRY_GRACE_SECONDS + 1)
    assert missed.run_id == run.run_id

    request = run_retries.retry_request(missed)
    assert (request.job_name, request.partition_key, request.run_key) == ("batch_job", "p8_extrac", f"retry-{run.run_id}")
    assert request.tags == {RESCORED_BY_TAG: "2", run_retries.RETRY_OF_TAG: run.run_id}  # not the dead worker's host
    assert set(request.asset_selection) == {dg.AssetKey("predictions"), dg.AssetKey("business_value")}


def test_runs_the_daemon_retried_or_that_are_retries_themselves_are_left_alone(instance):
    retried = _dead_rescoring_run(instance)
    instance.add_run_tags(retried.run_id, {AUTO_RETRY_RUN_ID_TAG: "the-daemons-retry"})
    retry_of_a_retry = create_run_for_test(instance, job_name="batch_job", status=dg.DagsterRunStatus.STARTED,
                                           tags={**RESCORING, run_retries.RETRY_OF_TAG: retried.run_id})
    instance.report_run_failed(retry_of_a_retry, "run worker process 4343 is gone")
    _daemon_read_every_failure(instance)
    assert run_retries.missed_retries(instance, _failed_at(instance, retry_of_a_retry) + 3600) == []


def test_the_sensor_requests_the_missed_retry(instance, monkeypatch):
    run = _dead_rescoring_run(instance)
    _daemon_read_every_failure(instance)
    monkeypatch.setattr(run_retries, "RETRY_GRACE_SECONDS", 0.0)
    result = missed_retry_sensor(dg.build_sensor_context(instance=instance))
    assert [(r.job_name, r.partition_key, r.tags[run_retries.RETRY_OF_TAG]) for r in result.run_requests] == [
        ("batch_job", "p8_extrac", run.run_id)]
