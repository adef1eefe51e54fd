"""The worker health check run monitoring relies on (plain functions; the crash test runs it for real)."""

import os
import socket
import subprocess
import sys
import time

from dagster._core.launcher.base import WorkerStatus

from mlops_assets.run_launcher import worker_status

HERE = socket.gethostname()


def test_a_live_worker_is_running():
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert worker_status(worker.pid, time.time(), HERE).status == WorkerStatus.RUNNING  # announced as it started
    finally:
        worker.kill()
        worker.wait()


def test_a_worker_whose_process_is_gone_has_failed():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    announced = time.time()
    child.wait()
    result = worker_status(child.pid, announced, HERE)
    assert result.status == WorkerStatus.FAILED and f"run worker process {child.pid} is gone" in result.msg


def test_a_pid_reused_by_another_process_is_not_the_worker():
    # pid 1 is alive, but it started long before the worker announced itself
    assert worker_status(1, time.time(), HERE).status == WorkerStatus.FAILED


def test_a_worker_not_yet_announced_or_on_another_host_is_unknown():
    assert worker_status(None, None, HERE).status == WorkerStatus.UNKNOWN
    # the compose stack: the daemon cannot see the code server container's processes
    assert worker_status(os.getpid(), time.time(), "code_server").status == WorkerStatus.UNKNOWN  # whatever pid it names
    assert worker_status(12345678, time.time(), None).status == WorkerStatus.UNKNOWN
