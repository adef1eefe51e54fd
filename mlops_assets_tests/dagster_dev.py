"""Start and stop a real `dagster dev` for end-to-end tests.

`dagster dev` ignores SIGTERM when started from a non-interactive shell, so it runs in its own
session and is stopped by killing every process of that session.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout:.0f} s")


def responds(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def background_process(args: list[str], env: dict[str, str], log_path: Path):
    """A process in its own group with its output in `log_path`; the whole group is stopped on exit."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield process
        finally:
            _stop(process)


def venv_command(name: str) -> str:
    return str(Path(sys.executable).parent / name)


@contextlib.contextmanager
def dagster_dev_process(env: dict[str, str], log_path: Path, startup_timeout: float = 180):
    """Yield (base URL, process) of a `dagster dev` (webserver + daemon) on a free localhost port."""
    port = free_port()
    args = [venv_command("dagster"), "dev", "-m", "mlops_assets.definitions", "-h", "127.0.0.1", "-p", str(port)]
    with background_process(args, env, log_path) as process:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: process.poll() is not None or responds(f"{url}/server_info"), startup_timeout, what="dagster dev")
        if process.poll() is not None:
            raise RuntimeError(f"dagster dev exited early; see {log_path}")
        yield url, process


@contextlib.contextmanager
def running_dagster_dev(env: dict[str, str], log_path: Path, startup_timeout: float = 180):
    """Yield the base URL of a `dagster dev` (webserver + daemon) on a free localhost port."""
    with dagster_dev_process(env, log_path, startup_timeout) as (url, _):
        yield url


def kill_session(process: subprocess.Popen) -> int:
    """SIGKILL every process of `process`'s session at once (dagster dev, its daemon, webserver,
    code server and run workers), as a power cut or the OOM killer would. Returns how many."""
    victims = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.getsid(int(entry.name)) == process.pid:
                    victims.append(int(entry.name))
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=30)
    return len(victims)


def _stop(process: subprocess.Popen) -> None:
    """Tests keep nothing a graceful shutdown would save (their instance, warehouse and data are
    temporary), so the whole session is killed at once instead of waiting out grace periods."""
    kill_session(process)  # also what the leader left behind (daemon, code server, run workers)
