"""The worker health check run monitoring relies on (the crash tests run it for real, under
`dagster dev` and in the compose stack)."""

import subprocess
import sys
import time

from dagster._core.launcher.base import WorkerStatus
from dagster._core.remote_origin import GrpcServerCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.storage.dagster_run import DagsterRun
from dagster._grpc.client import DagsterGrpcClient

from mlops_assets.run_launcher import code_server_status, worker_status
from mlops_assets_tests.dagster_dev import background_process, free_port, venv_command, wait_for


def test_a_live_worker_is_running():
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert worker_status(worker.pid, time.time()).status == WorkerStatus.RUNNING  # announced as it started
    finally:
        worker.kill()
        worker.wait()


def test_a_worker_whose_process_is_gone_has_failed():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    announced = time.time()
    child.wait()
    result = worker_status(child.pid, announced)
    assert result.status == WorkerStatus.FAILED and f"run worker process {child.pid} is gone" in result.msg


def test_a_pid_reused_by_another_process_is_not_the_worker():
    # pid 1 is alive, but it started long before the worker announced itself
    assert worker_status(1, time.time()).status == WorkerStatus.FAILED


def test_a_worker_not_yet_announced_is_not_judged():
    # Dagster's monitoring fails any run whose check is not RUNNING, so "no verdict yet" must read as running
    result = worker_status(None, None)
    assert result.status == WorkerStatus.RUNNING and "no verdict" in result.msg


def _run_launched_by(port: int) -> DagsterRun:
    origin = GrpcServerCodeLocationOrigin(host="127.0.0.1", port=port, location_name="mlops_assets")
    job = RemoteJobOrigin(RemoteRepositoryOrigin(origin, "__repository__"), "batch_job")
    return DagsterRun(job_name="batch_job", run_id="0f0b2170-0000-4000-8000-000000000000", remote_job_origin=job)


def test_a_run_on_another_host_is_judged_by_its_code_server(tmp_path):
    """The compose stack: the daemon cannot see the code server container's processes, so it asks
    the code server; a restarted code server no longer has the run. One that does not answer (it is
    restarting) gives no verdict yet, which must not read as a failure to Dagster's monitoring."""
    port = free_port()
    silent = code_server_status(_run_launched_by(port))  # nothing listens yet
    assert silent.status == WorkerStatus.RUNNING and "does not answer yet" in silent.msg
    args = [venv_command("dagster"), "api", "grpc", "-h", "127.0.0.1", "-p", str(port), "-m", "mlops_assets.definitions"]
    with background_process(args, None, tmp_path / "grpc.log"):
        client = DagsterGrpcClient(host="127.0.0.1", port=port)
        wait_for(lambda: client.health_check_query() == "SERVING", 120, what="the code server")
        result = code_server_status(_run_launched_by(port))
    assert result.status == WorkerStatus.FAILED and "no longer runs this run" in result.msg
