"""The one piece Dagster's default run launcher lacks for crash recovery: telling run monitoring
whether a run's worker process is still alive.

With `DefaultRunLauncher` every run worker is a local process started by the code server, and run
monitoring can only enforce a maximum runtime: a run whose worker was killed (SIGKILL, the OOM
killer, a power cut) stays STARTED forever and keeps its `duckdb` pool slot, so every later run
queues behind it. This launcher launches runs exactly as the default one does and answers
`check_run_worker_health` from the worker's own "Started process for run (pid: N)" event: the
monitoring daemon then marks a run whose worker is gone as failed, frees its slots, and run
retries start it again. The pid is only meaningful on the worker's own host: when the code server
runs elsewhere (its own container in the compose stack), the check asks that code server instead
which runs it is executing (`dagster api grpc` answers; the `dagster code-server start` proxy does
not): a run it no longer has (its container was killed and restarted) has failed.

Dagster's monitoring fails every STARTED run whose check is not RUNNING or SUCCESS, "unknown"
included, so a check that cannot tell yet (a code server that is restarting) says RUNNING and
gives its verdict at a later poll.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from dagster import DefaultRunLauncher
from dagster._core.events import DagsterEventType
from dagster._core.launcher.base import CheckRunHealthResult, LaunchRunContext, WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun
from dagster._grpc.types import GetCurrentRunsResult
from dagster._serdes import deserialize_value

WORKER_HOST_TAG = "mlops/run_worker_host"
"""Set at launch: the host whose processes run the worker (the code server's)."""
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", socket.gethostname()}

START_WINDOW_SECONDS = (300.0, 5.0)
"""A worker announces its pid within seconds of starting (after its imports). A live process with
that pid that started more than this long before or after the announcement is another process that
reused the pid (after a restart pids start over)."""


def process_start_time(pid: int) -> float | None:
    """When process `pid` started (epoch seconds), or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime"))
    except (OSError, StopIteration, ValueError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces; fields follow its ')'
    if fields[0] == "Z":  # a zombie has exited; only its parent has not collected it
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def worker_status(pid: int | None, started_at: float | None) -> CheckRunHealthResult:
    """Whether the worker that announced `pid` at `started_at` (epoch seconds) on this host is still running."""
    if pid is None or started_at is None:
        return CheckRunHealthResult(WorkerStatus.RUNNING, "the run worker has not reported its process yet: no verdict")
    started = process_start_time(pid)
    before, after = START_WINDOW_SECONDS
    if started is None or not started_at - before <= started <= started_at + after:
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"run worker process {pid} is gone (killed, out of memory, or the machine or deployment restarted)",
            run_worker_id=str(pid),
        )
    return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))


def code_server_status(run: DagsterRun) -> CheckRunHealthResult:
    """Whether the code server that launched `run` (on another host) still executes it."""
    origin = run.remote_job_origin.repository_origin.code_location_origin
    try:
        current = deserialize_value(origin.create_client().get_current_runs(), GetCurrentRunsResult)
    except Exception as error:  # restarting or unreachable: no verdict until it answers
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"the code server {origin.location_name} does not answer yet: {error}")
    if run.run_id in current.current_runs:
        return CheckRunHealthResult(WorkerStatus.RUNNING)
    return CheckRunHealthResult(
        WorkerStatus.FAILED,
        f"the code server {origin.location_name} no longer runs this run: its run worker died "
        "(the code server or its container was killed or restarted)",
    )


class LocalProcessRunLauncher(DefaultRunLauncher):
    """`DefaultRunLauncher` plus a worker health check, so run monitoring recovers crashed runs."""

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        location = run.remote_job_origin.repository_origin.code_location_origin.location_name
        client = getattr(context.workspace.get_code_location(location), "client", None) if context.workspace else None
        local = client is not None and (client.socket is not None or client.host in LOCAL_HOSTS)
        host = socket.gethostname() if local else getattr(client, "host", None) or "unknown"
        self._instance.add_run_tags(run.run_id, {WORKER_HOST_TAG: host})
        super().launch_run(context)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        if run.tags.get(WORKER_HOST_TAG) != socket.gethostname():
            return code_server_status(run)
        records = self._instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT)
        for record in reversed(records):
            data = record.dagster_event.event_specific_data if record.dagster_event else None
            pid = getattr(data, "metadata", {}).get("pid") if data is not None else None
            if pid is not None and record.dagster_event.message.startswith("Started process for"):
                return worker_status(int(pid.value), record.timestamp)
        return worker_status(None, None)
