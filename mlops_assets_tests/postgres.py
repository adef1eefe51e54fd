"""A throwaway PostgreSQL server from Debian's `postgresql` package, for the production-style
instance test. `initdb` refuses to run as root, so as root the cluster belongs to `postgres`."""

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from mlops_assets_tests.dagster_dev import free_port

USER = DATABASE = "dagster"


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_cluster_owner(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@contextlib.contextmanager
def postgres_server():
    """Yield (host, port, user, database) of a fresh server on a free localhost port."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found (Debian package `postgresql`; `make test` installs it as root)")
    # Not under pytest's tmp_path: as root that is private to root and the `postgres` user cannot enter it.
    root = Path(tempfile.mkdtemp(prefix="mlops-pg-", dir="/tmp"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "cluster", free_port()

    def run(*args) -> None:
        subprocess.run(_as_cluster_owner([str(a) for a in args]), check=True, capture_output=True, timeout=120)

    try:
        run(bin_dir / "initdb", "-D", data, "-U", USER, "--auth=trust", "--encoding=UTF8", "--no-sync")
        run(bin_dir / "pg_ctl", "-D", data, "-l", root / "server.log", "-w", "-t", "60", "start",
            "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off")
        try:
            run(bin_dir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", USER, DATABASE)
            yield "127.0.0.1", port, USER, DATABASE
        finally:
            run(bin_dir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
