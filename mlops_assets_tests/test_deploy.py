"""The deployment files as written; test_docker_stack.py builds and runs them."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_compose_names_every_service_with_the_bind_mounted_data_folder_and_local_ports():
    compose = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "mlflow", "user_code", "webserver", "daemon", "app"}
    published = {name: s["ports"][0] for name, s in services.items() if "ports" in s}
    assert set(published) == {"mlflow", "webserver", "app"}
    assert all(port.startswith("127.0.0.1:") for port in published.values())
    for name in ("mlflow", "user_code", "webserver", "daemon", "app"):
        service = services[name]
        assert service["volumes"] == ["${MLOPS_DATA:-./data}:/opt/dagster/data"], name
        assert service["environment"]["DAGSTER_POSTGRES_HOST"] == "postgres"
        assert service["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert service["build"]["args"]["BASE_IMAGE"] == "${BASE_IMAGE:-python:3.11-slim}"
    for name, service in services.items():
        assert service["restart"] == "on-failure" and "healthcheck" in service, name
    assert set(compose["volumes"]) == {"postgres"}
    assert services["user_code"]["command"][:3] == ["dagster", "api", "grpc"]
    assert services["webserver"]["command"][0] == "dagster-webserver"
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    assert services["app"]["command"][:3] == ["python", "-m", "mlops_assets.app"]
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
    assert dockerfile.startswith("# ") and "ARG BASE_IMAGE=python:3.11-slim\nFROM ${BASE_IMAGE}" in dockerfile
    assert "requirements.lock" in dockerfile and "USER dagster" in dockerfile
    assert "DAGSTER_HOME=/opt/dagster/home" in dockerfile and "/opt/dagster/app/deploy/dagster.yaml" in dockerfile
