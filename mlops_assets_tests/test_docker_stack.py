"""The compose stack built and run: `docker compose up` as a user would, a sensor-driven batch
through the bind-mounted inbox, checked through the real clients, and containers crashed mid-run.

Needs a Docker engine (docker_engine.py starts one as root where Debian's docker.io is installed,
and skips with the reason elsewhere). About 10 minutes on 2 cores, most of it the image build.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

from mlops_assets.sample_data import generate_month, write_extract
from mlops_assets_tests.dagster_dev import REPO, free_port, responds, wait_for
from mlops_assets_tests.docker_engine import container_pid, crash, docker_engine, standin_images

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.timeout(3000)]

HOST_UID = 1000  # the host user the data folder belongs to (MLOPS_UID / MLOPS_GID)
ROWS = 6_000
# the stack shares the cores with the rest of the suite: `make test`'s compute threads per process
# (TEST_THREADS), or one when the suite is run without it
THREADS = {name: os.environ.get(name, "1") for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.load(response)
    assert "errors" not in body, body
    return body["data"]


def runs(url: str, job: str) -> list[dict]:
    query = '{ runsOrError(filter: {pipelineName: "%s"}) { ... on Runs { results { runId status startTime endTime ' \
            'tags { key value } } } } }' % job
    found = graphql(url, query)["runsOrError"]["results"]
    for run in found:
        run["tags"] = {tag["key"]: tag["value"] for tag in run["tags"]}
    return found


def batch_runs(url: str, batch: str) -> list[dict]:
    return [run for run in runs(url, "batch_job") if run["tags"].get("dagster/partition") == batch]


def launch(url: str, job: str) -> str:
    mutation = '''mutation { launchRun(executionParams: {selector: {repositoryLocationName: "mlops_assets",
        repositoryName: "__repository__", jobName: "%s"}}) {
        __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }''' % job
    result = graphql(url, mutation)["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def finished(url: str, job: str, run_id: str) -> dict | None:
    run = next(r for r in runs(url, job) if r["runId"] == run_id)
    return run if run["status"] in ("SUCCESS", "FAILURE", "CANCELED") else None


def drop(inbox: Path, month: int, seed: int) -> str:
    """A generated extract renamed into the bind-mounted inbox, owned by the host user."""
    staged = write_extract(generate_month(month, ROWS, seed=seed, with_target=False), inbox.parent / "outbox")
    os.chown(staged, HOST_UID, HOST_UID)
    staged.rename(inbox / staged.name)
    return staged.stem


def scored_rows(data: Path, batch: str) -> tuple[int, int]:
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("SELECT count(*), count(DISTINCT key_value) FROM predictions WHERE batch = ?", [batch]).fetchall()[0]


def chown_tree(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        os.chown(path, HOST_UID, HOST_UID)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The stack up on a trained-from-nothing data folder; torn down with its volumes afterwards."""
    work = tmp_path_factory.mktemp("stack")
    data = work / "data"
    for month in range(1, 5):
        write_extract(generate_month(month, ROWS, seed=41), data / "raw" / "training")
    (data / "raw" / "inference").mkdir(parents=True)
    chown_tree(data)
    with docker_engine(work):
        ports = {name: free_port() for name in ("DAGSTER_PORT", "MLFLOW_PORT", "APP_PORT")}
        env = {**os.environ, **standin_images(), **THREADS, **{k: str(v) for k, v in ports.items()},
               "MLOPS_DATA": str(data), "MLOPS_UID": str(HOST_UID), "MLOPS_GID": str(HOST_UID),
               "COMPOSE_HTTP_TIMEOUT": "600"}  # creating a container copies the image whole on vfs
        compose = ["docker-compose", "-p", f"mlops_stack_test_{os.getpid()}", "-f", str(REPO / "deploy" / "docker-compose.yml")]
        try:
            started = time.monotonic()
            build = subprocess.run([*compose, "build"], env=env, capture_output=True, text=True, timeout=1500)
            assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
            built = time.monotonic()
            up = subprocess.run([*compose, "up", "-d"], env=env, capture_output=True, text=True, timeout=600)
            assert up.returncode == 0, up.stderr[-3000:]
            url = f"http://127.0.0.1:{ports['DAGSTER_PORT']}"
            wait_for(lambda: responds(f"{url}/server_info"), 300, interval=2, what="the webserver")
            yield dict(url=url, data=data, env=env, compose=compose, ports=ports, work=work,
                       build_seconds=built - started, up_at=built)
        finally:
            logs = subprocess.run([*compose, "logs", "--no-color", "--tail", "200"], env=env, capture_output=True, text=True)
            (work / "compose.log").write_text(logs.stdout + logs.stderr)
            # thrown away with its volumes: no grace period to wait out (-t 20 spent ~12 s here)
            subprocess.run([*compose, "down", "-v", "--remove-orphans", "-t", "1"], env=env, capture_output=True, timeout=300)
            leftover = subprocess.run(["docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={compose[2]}"],
                                      capture_output=True, text=True).stdout.split()
            assert leftover == [], f"volumes left behind: {leftover}"


def test_the_stack_trains_and_scores_a_dropped_extract(stack):
    url, data = stack["url"], stack["data"]
    training_run = launch(url, "training_job")
    assert [r["runId"] for r in runs(url, "training_job")] == [training_run]
    done = wait_for(lambda: finished(url, "training_job", training_run), 600, interval=3, what="training_job")
    assert done["status"] == "SUCCESS", f"see the services' logs in {stack['work'] / 'compose.log'}"

    batch = drop(data / "raw" / "inference", 5, seed=43)
    dropped = time.monotonic()
    scored = wait_for(lambda: [r for r in batch_runs(url, batch) if r["status"] in ("SUCCESS", "FAILURE")], 600,
                      interval=2, what="the sensor's batch_job run")
    first_batch_seconds = time.monotonic() - stack["up_at"]
    assert [r["status"] for r in scored] == ["SUCCESS"]
    assert scored[0]["tags"]["dagster/sensor_name"] == "inference_folder_sensor"

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"http://127.0.0.1:{stack['ports']['MLFLOW_PORT']}")
    champion = client.get_model_version_by_alias("cu_venta_propensity", "champion")
    assert int(champion.version) == 1 and champion.source.startswith(("models:/", "mlflow-artifacts:"))

    assert scored_rows(data, batch) == (ROWS, ROWS)
    warehouse = data / "warehouse.duckdb"
    assert warehouse.stat().st_uid == HOST_UID  # the host user owns what the stack wrote
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT version, promoted FROM model").fetchall() == [(1, True)]
        assert con.execute("SELECT batch FROM drift_history").fetchall() == [(batch,)]
    # the host's thread settings reach the code server, whose children the run workers are
    environ = Path(f"/proc/{container_pid(stack['compose'], 'user_code', stack['env'])}/environ").read_bytes().split(b"\0")
    assert {f"{k}={v}".encode() for k, v in THREADS.items()} <= set(environ)
    app = f"http://127.0.0.1:{stack['ports']['APP_PORT']}"
    assert responds(f"{app}/_stcore/health") and responds(app)
    print(f"image build {stack['build_seconds']:.0f} s; up -> first batch scored (training included) "
          f"{first_batch_seconds:.0f} s (drop -> scored {time.monotonic() - dropped:.0f} s)")


def wait_or_show_logs(stack: dict, predicate, timeout: float, what: str, interval: float = 2):
    """`wait_for` that fails with the services' last log lines: CI keeps nothing else of the stack."""
    try:
        return wait_for(predicate, timeout, interval=interval, what=what)
    except TimeoutError as exc:
        logs = subprocess.run([*stack["compose"], "logs", "--no-color", "--tail", "40", "daemon", "user_code"],
                              env=stack["env"], capture_output=True, text=True, timeout=120)
        raise TimeoutError(f"{exc}; the daemon's and code server's last lines:\n{logs.stdout[-8000:]}") from None


def _started(url: str, batch: str) -> dict | None:
    return next((r for r in batch_runs(url, batch) if r["status"] == "STARTED"), None)


def test_a_crashed_daemon_or_code_server_does_not_stop_the_pipeline(stack):
    url, data, env, compose = stack["url"], stack["data"], stack["env"], stack["compose"]
    inbox = data / "raw" / "inference"

    # the daemon dies while a batch is scored: the run lives in the code server and finishes; the
    # daemon comes back by itself (restart: on-failure) and its sensor scores the next file
    batch = drop(inbox, 6, seed=47)
    wait_or_show_logs(stack, lambda: _started(url, batch), 300, f"the run scoring {batch}", interval=0.5)
    crash(compose, "daemon", env)
    # the whole test, three crashes, took 110-340 s in fresh-clone runs; this run alone took over 300 s
    # once in CI, in an hour when a 6,000-row batch run took 4-5 minutes (evidently's report 3 of them)
    run = wait_or_show_logs(stack, lambda: [r for r in batch_runs(url, batch) if r["status"] in ("SUCCESS", "FAILURE")], 600,
                            f"{batch}'s run")
    assert [r["status"] for r in run] == ["SUCCESS"]
    killed = time.monotonic()
    after = drop(inbox, 7, seed=53)
    # 25 s on a quiet machine; 300 s was passed once in CI in a slow hour, with the crash-recovery and
    # retraining tests beside it
    wait_or_show_logs(stack, lambda: [r for r in batch_runs(url, after) if r["status"] == "SUCCESS"], 600,
                      "a file scored after the daemon came back")
    daemon_recovery = time.monotonic() - killed

    # the code server dies mid-run, and its run worker with it: run monitoring sees that the
    # restarted code server no longer runs it, fails it with that reason, and run retries score it again
    batch = drop(inbox, 8, seed=59)
    first = wait_or_show_logs(stack, lambda: _started(url, batch), 300, f"the run scoring {batch}", interval=0.5)
    time.sleep(2)
    crash(compose, "user_code", env)
    killed = time.monotonic()
    attempts = wait_or_show_logs(stack, lambda: (lambda rs: rs if any(r["status"] == "SUCCESS" for r in rs) else None)(batch_runs(url, batch)),
                                 600, f"{batch} scored again after the code server crashed")
    code_server_recovery = time.monotonic() - killed
    failed = next(r for r in attempts if r["runId"] == first["runId"])
    assert failed["status"] == "FAILURE"
    assert any(r["tags"].get("dagster/parent_run_id") == first["runId"] and r["status"] == "SUCCESS" for r in attempts)
    reason = graphql(url, '{ logsForRun(runId: "%s") { ... on EventConnection { events { ... on MessageEvent { message } } } } }'
                     % first["runId"])
    messages = [e["message"] for e in reason["logsForRun"]["events"]]
    assert any("no longer runs this run" in m for m in messages), messages[-10:]
    for scored in (batch, after):
        assert scored_rows(data, scored) == (ROWS, ROWS)  # each customer once, whatever the retries did
    queued = [r for job in ("batch_job", "training_job") for r in runs(url, job) if r["status"] in ("QUEUED", "STARTED")]
    assert queued == []
    print(f"daemon crash: next file scored {daemon_recovery:.0f} s later; code server crash: batch scored "
          f"{code_server_recovery:.0f} s after the kill")
