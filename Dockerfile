# One image for every long-running process of the stack, chosen by command (deploy/docker-compose.yml):
# the code location's gRPC server, the Dagster webserver and daemon, the MLflow tracking server and
# the campaign app. The base is a build argument so the stack test can build on a local stand-in of
# the official image (its machines reach package registries but no container registry); users get
# python:3.11-slim. Everything else is the same for both.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/opt/dagster/app \
    DAGSTER_HOME=/opt/dagster/home \
    DAGSTER_COMPUTE_LOGS_DIR=/opt/dagster/data/dagster/compute_logs \
    MLOPS_DATA_DIR=/opt/dagster/data \
    MLFLOW_DISABLE_TELEMETRY=true \
    GIT_PYTHON_REFRESH=quiet \
    DO_NOT_TRACK=1

# The dependency tree from the lock file, in a virtual environment (Debian-based Pythons refuse
# system-wide pip installs), bytecode compiled so each run worker's imports are fast. Compose may
# run the processes as the host user's uid (MLOPS_UID) so that what they write in the bind-mounted
# data folder belongs to that user: the instance folder is writable by any uid.
WORKDIR /opt/dagster/app
COPY requirements.lock ./
RUN python3 -m venv "$VIRTUAL_ENV" \
    && pip install --no-cache-dir uv==0.13.9 \
    && uv pip install --no-cache --compile-bytecode -r requirements.lock \
    && useradd --create-home --uid 1000 dagster \
    && mkdir -p "$DAGSTER_HOME" "$MLOPS_DATA_DIR" \
    && ln -s /opt/dagster/app/deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml" \
    && chown dagster:dagster "$DAGSTER_HOME" "$MLOPS_DATA_DIR" \
    && chmod 1777 "$DAGSTER_HOME" "$MLOPS_DATA_DIR"
USER dagster
# default: the code location's gRPC server; compose sets the command of every other service
CMD ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", "4000", "-m", "mlops_assets.definitions"]

# The code last (imported from PYTHONPATH; .dockerignore keeps the context to the package and the
# deployment's instance and workspace files): a code change rebuilds only this layer.
COPY . ./
