"""A Docker engine and the two base images for the compose stack test.

Uses the engine that answers `docker info`; otherwise, as root with Debian's `docker.io` installed
(`make test` installs it), starts `dockerd` and stops it afterwards: with overlay2, or with vfs
(which works without kernel overlay support, but copies every layer whole: builds take ~3x longer)
where overlay2 cannot start. Registry images cannot be pulled on these
machines, so the official `python:3.11-slim` and `postgres:16` are replaced by stand-ins built
from Debian's packages (docker/standin-images.sh); the compose file and Dockerfile are unchanged.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from mlops_assets_tests.dagster_dev import wait_for

HERE = Path(__file__).resolve().parent
PYTHON_STANDIN = "mlops-standin/python:3.11-slim"
POSTGRES_STANDIN = "mlops-standin/postgres:15"


def _answers() -> bool:
    return shutil.which("docker") is not None and subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@contextlib.contextmanager
def docker_engine(log_dir: Path):
    """An engine to use; skips with the reason when there is none and none can be started."""
    if _answers():
        yield
        return
    missing = [tool for tool in ("docker", "dockerd", "docker-compose", "debootstrap") if shutil.which(tool) is None]
    if missing or os.geteuid() != 0:
        pytest.skip(f"no Docker engine and none can be started here ({'missing ' + ', '.join(missing) if missing else 'not root'}; "
                    "`make test` installs docker.io, docker-compose and debootstrap as root)")
    engine = None
    try:
        for driver in ("overlay2", "vfs"):
            engine = _start_dockerd(driver, log_dir)
            if engine is not None:
                break
        if engine is None:
            pytest.skip(f"dockerd could not start here: {(log_dir / 'dockerd-vfs.log').read_text()[-500:]}")
        yield
    finally:
        if engine is not None:
            _stop_dockerd(engine)


def _start_dockerd(driver: str, log_dir: Path) -> subprocess.Popen | None:
    with open(log_dir / f"dockerd-{driver}.log", "wb") as log:
        engine = subprocess.Popen(["dockerd", f"--storage-driver={driver}", "--pidfile", str(log_dir / "dockerd.pid")],
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: engine.poll() is not None or _answers(), 60, what="dockerd")
    except TimeoutError:
        _stop_dockerd(engine)
        return None
    return engine if engine.poll() is None else None


def _stop_dockerd(engine: subprocess.Popen) -> None:
    if engine.poll() is None:
        engine.send_signal(signal.SIGTERM)
        try:
            engine.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(engine.pid, signal.SIGKILL)
            engine.wait()


def standin_images() -> dict[str, str]:
    """BASE_IMAGE and POSTGRES_IMAGE for compose: the stand-ins, built once per engine (about a minute)."""
    if subprocess.run(["docker", "image", "inspect", PYTHON_STANDIN, POSTGRES_STANDIN], capture_output=True).returncode != 0:
        subprocess.run([str(HERE / "docker" / "standin-images.sh"), PYTHON_STANDIN, POSTGRES_STANDIN],
                       check=True, capture_output=True, timeout=900)
    return {"BASE_IMAGE": PYTHON_STANDIN, "POSTGRES_IMAGE": POSTGRES_STANDIN}


def container_pid(compose: list[str], service: str, env: dict[str, str]) -> int:
    """The host pid of a service's main process (what a crash or the OOM killer would kill)."""
    container = subprocess.run([*compose, "ps", "-q", service], env=env, capture_output=True, text=True, check=True).stdout.strip()
    inspected = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", container], capture_output=True, text=True, check=True)
    return int(inspected.stdout.strip())


def crash(compose: list[str], service: str, env: dict[str, str]) -> None:
    """SIGKILL the service's main process from the host: unlike `docker kill`, which Docker counts as
    a deliberate stop, the restart policy applies, as it would after a real crash."""
    os.kill(container_pid(compose, service, env), signal.SIGKILL)
    time.sleep(1)
