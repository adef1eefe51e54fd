"""The three processes the containers of deploy/docker-compose.yml run (gRPC code server,
webserver, daemon), started locally with deploy/dagster.yaml against a real PostgreSQL."""

import json
import shutil
import socket
import urllib.request

import dagster as dg
import pytest
import yaml

from mlops_assets.sample_data import generate_month, write_extract
from mlops_assets_tests.conftest import sql, make_settings
from mlops_assets_tests.dagster_dev import REPO, background_process, free_port, responds, venv_command, wait_for
from mlops_assets_tests.postgres import postgres_server
from mlops_assets_tests.test_cli import cli_env

pytestmark = pytest.mark.slow


def _accepts_connections(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql", data=json.dumps({"query": query}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["data"]


def test_code_server_webserver_and_daemon_on_postgres_run_a_sensor_driven_batch(tmp_path, trained, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(trained.settings.data_dir, data, ignore=shutil.ignore_patterns("p5_extrac.csv"))
    home = tmp_path / "dagster_home"
    env = cli_env(data, home)
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    grpc_port, web_port = free_port(), free_port()
    workspace = yaml.safe_load((REPO / "deploy" / "workspace.yaml").read_text())
    workspace["load_from"][0]["grpc_server"].update(host="127.0.0.1", port=grpc_port)  # compose's `user_code` service
    (tmp_path / "workspace.yaml").write_text(yaml.safe_dump(workspace))
    location = workspace["load_from"][0]["grpc_server"]["location_name"]

    with postgres_server() as (host, port, user, database):
        postgres = dict(DAGSTER_POSTGRES_HOST=host, DAGSTER_POSTGRES_PORT=str(port), DAGSTER_POSTGRES_USER=user,
                        DAGSTER_POSTGRES_PASSWORD="trust-auth", DAGSTER_POSTGRES_DB=database,
                        DAGSTER_COMPUTE_LOGS_DIR=str(tmp_path / "compute_logs"))
        env.update(postgres)
        for name, value in postgres.items():  # this process reads the same instance
            monkeypatch.setenv(name, value)
        code_server = [venv_command("dagster"), "api", "grpc", "-h", "127.0.0.1", "-p", str(grpc_port),
                       "-m", "mlops_assets.definitions", "--location-name", location]
        workspace_file = str(tmp_path / "workspace.yaml")
        webserver = [venv_command("dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port), "-w", workspace_file]
        daemon = [venv_command("dagster-daemon"), "run", "-w", workspace_file]
        with background_process(code_server, env, tmp_path / "code_server.log"):
            wait_for(lambda: _accepts_connections(grpc_port), 120, what="the gRPC code server")
            with background_process(webserver, env, tmp_path / "webserver.log"), \
                    background_process(daemon, env, tmp_path / "daemon.log"):
                url = f"http://127.0.0.1:{web_port}"
                wait_for(lambda: responds(f"{url}/server_info"), 120, what="the webserver")
                write_extract(generate_month(5, 3_000, seed=29, with_target=False), data / "raw" / "inference")

                def batch_run_finished():
                    with dg.DagsterInstance.from_config(str(home)) as instance:
                        runs = instance.get_runs(dg.RunsFilter(job_name="batch_job"))
                        return runs if runs and runs[0].is_finished else None

                (run,) = wait_for(batch_run_finished, timeout=300, interval=2, what="the sensor's batch_job run")
                with dg.DagsterInstance.from_config(str(home)) as instance:
                    storage = type(instance.run_storage).__name__
                    failure = "\n".join(
                        e.message or "" for e in instance.all_logs(run.run_id)
                        if e.dagster_event and e.dagster_event.is_step_failure
                    )
                seen_by_webserver = _graphql(url, "{ runsOrError { ... on Runs { results { runId status } } } }")

    assert run.status == dg.DagsterRunStatus.SUCCESS, failure or (tmp_path / "daemon.log").read_text()[-3000:]
    assert storage == "PostgresRunStorage"
    assert run.tags["dagster/sensor_name"] == "inference_folder_sensor" and run.tags["dagster/partition"] == "p5_extrac"
    assert {"runId": run.run_id, "status": "SUCCESS"} in seen_by_webserver["runsOrError"]["results"]
    assert sql(make_settings(data), "SELECT batch, count(*) FROM business_value GROUP BY 1") == [("p5_extrac", 3_000)]
