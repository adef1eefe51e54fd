# One image for the three Dagster processes (code server, webserver, daemon), chosen by command.
# Not built in CI (no Docker engine there); see docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DAGSTER_HOME=/opt/dagster/home \
    MLOPS_DATA_DIR=/opt/dagster/data \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=1

WORKDIR /opt/dagster/app
COPY requirements.lock ./
RUN pip install --no-cache-dir uv==0.13.9 \
    && uv pip install --system --no-cache --compile-bytecode -r requirements.lock

COPY pyproject.toml setup.py README.md ./
COPY mlops_assets ./mlops_assets
RUN uv pip install --system --no-cache --no-deps .

RUN useradd --create-home --uid 1000 dagster \
    && mkdir -p "$DAGSTER_HOME" "$MLOPS_DATA_DIR" /opt/dagster/mlflow \
    && chown -R dagster:dagster /opt/dagster
COPY --chown=dagster:dagster deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
USER dagster

EXPOSE 4000 3000
# default: the code location's gRPC server; compose overrides the command for webserver and daemon
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "mlops_assets.definitions"]
