"""The deployment files: what can be checked without a Docker engine (none runs in CI)."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_compose_names_every_service_with_consistent_volumes_and_ports():
    compose = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "mlflow", "user_code", "webserver", "daemon"}
    assert services["webserver"]["ports"] == ["127.0.0.1:3000:3000"]
    assert services["mlflow"]["ports"] == ["127.0.0.1:5000:5000"]
    for name in ("user_code", "webserver", "daemon"):
        service = services[name]
        assert "data:/opt/dagster/data" in service["volumes"], name
        assert service["environment"]["DAGSTER_POSTGRES_HOST"] == "postgres"
        assert service["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    declared = set(compose["volumes"])
    used = {v.split(":")[0] for s in services.values() for v in s.get("volumes", []) if not v.startswith(".")}
    assert used == declared
    assert services["user_code"]["command"][:3] == ["dagster", "code-server", "start"]
    assert services["webserver"]["command"][0] == "dagster-webserver"
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    workspace = yaml.safe_load((REPO / "deploy" / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["grpc_server"] == {"host": "user_code", "port": 4000, "location_name": "mlops_assets"}


def test_production_instance_uses_postgres_and_limits_warehouse_writers():
    instance = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    assert set(instance["storage"]["postgres"]["postgres_db"]) == {"hostname", "port", "username", "password", "db_name", "scheme"}
    assert instance["concurrency"]["pools"]["default_limit"] == 1
    assert instance["telemetry"]["enabled"] is False
    local = yaml.safe_load((REPO / "dagster.yaml").read_text())
    assert local["concurrency"]["pools"]["default_limit"] == 1 and local["telemetry"]["enabled"] is False


def test_dockerfile_runs_as_a_non_root_user_from_the_lock_file():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert dockerfile.startswith("# ") and "FROM python:3.11-slim" in dockerfile
    assert "requirements.lock" in dockerfile and "USER dagster" in dockerfile
    assert "DAGSTER_HOME=/opt/dagster/home" in dockerfile and "deploy/dagster.yaml" in dockerfile
