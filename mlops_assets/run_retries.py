"""Retries Dagster promised but did not start: a safety net under its run-retry daemon.

When a run worker dies, run monitoring fails the run and Dagster's event-log consumer daemon starts
the retry. Dagster writes the failure event before it marks the run failed and tags it
`dagster/will_retry`; a consumer that reads the event in between sees a run still STARTED, decides
there is nothing to retry, and moves its cursor past the event for good. That happens at a restart,
when the monitoring daemon fails the dead runs while the other daemons start, and more often on a
busy machine. Without this net such a run (a scoring, a retraining, a rescoring) waits for a person.

A missed retry here is a failed run tagged `dagster/will_retry=true` without the
`dagster/auto_retry_run_id` the daemon adds when it retries, whose failure the daemon has read
(its cursor is at or past it) at least `RETRY_GRACE_SECONDS` ago. It is started again, once (the
run key), as a new run of the same job, partition, config, selection and tags; a run started here
is not retried here again, so a worker that keeps dying ends with a failed run, not a loop.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.storage.tags import AUTO_RETRY_RUN_ID_TAG, PARTITION_NAME_TAG, WILL_RETRY_TAG

from mlops_assets.run_launcher import WORKER_HOST_TAG

RETRY_OF_TAG = "mlops/retry_of"
"""On a run started by the safety net: the failed run it retries."""
RETRY_GRACE_SECONDS = 30.0
"""The daemon retries within a second or two of reading a failure; this long after, it will not."""
LOOKBACK_SECONDS = 24 * 3600.0
"""Only runs that failed this recently are considered (older ones were seen by earlier ticks)."""


def _consumer_read_until(instance: dg.DagsterInstance) -> float | None:
    """Timestamp of the newest run failure Dagster's retry daemon has read, None if it read none."""
    # imported here: the daemon package costs every process that loads the code location ~0.3 s
    from dagster._daemon.auto_run_reexecution.event_log_consumer import _create_cursor_key

    key = _create_cursor_key(DagsterEventType.RUN_FAILURE)
    cursor = instance.daemon_cursor_storage.get_cursor_values({key}).get(key)
    if cursor is None:
        return None
    read = instance.event_log_storage.get_logs_for_all_runs_by_log_id(
        after_cursor=int(cursor) - 1, dagster_event_type={DagsterEventType.RUN_FAILURE}, limit=1
    )
    return next(iter(read.values())).timestamp if read else None


def missed_retries(instance: dg.DagsterInstance, now: float) -> list[dg.DagsterRun]:
    """Failed runs Dagster said it would retry, whose failure its daemon read without retrying them."""
    read_until = _consumer_read_until(instance)
    if read_until is None:
        return []
    records = instance.get_run_records(
        dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.FAILURE],
            tags={WILL_RETRY_TAG: "true"},
            updated_after=dt.datetime.fromtimestamp(now - LOOKBACK_SECONDS, tz=dt.timezone.utc),
        )
    )
    missed = []
    for run in (record.dagster_run for record in records):
        if AUTO_RETRY_RUN_ID_TAG in run.tags or RETRY_OF_TAG in run.tags:
            continue
        # the failure event's own timestamp: the run record's end time is a rounded copy of it
        failed_at = max((e.timestamp for e in instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_FAILURE)), default=None)
        if failed_at is not None and failed_at <= read_until and now - failed_at >= RETRY_GRACE_SECONDS:
            missed.append(run)
    return missed


def retry_request(run: dg.DagsterRun) -> dg.RunRequest:
    """The failed run again: same job, partition, config, asset selection and the project's tags."""
    tags = {k: v for k, v in run.tags.items() if not k.startswith(("dagster/", ".dagster/")) and k != WORKER_HOST_TAG}
    return dg.RunRequest(
        run_key=f"retry-{run.run_id}",
        job_name=run.job_name,
        partition_key=run.tags.get(PARTITION_NAME_TAG),
        run_config=run.run_config,
        asset_selection=list(run.asset_selection) if run.asset_selection else None,
        tags={**tags, RETRY_OF_TAG: run.run_id},
    )
