# The README's two commands: `make demo` and `make test`. Both build .venv from the lock file.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export PYTHONUNBUFFERED := 1

.PHONY: demo test test-fast system-packages dev app mlflow-ui bench lock clean

# Bytecode is compiled at install: this environment sets PYTHONDONTWRITEBYTECODE, and without .pyc
# files every Dagster run worker and CLI call recompiled pandas, scikit-learn and dagster (imports ~2x slower).
$(VENV)/.installed: requirements-dev.lock pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	command -v uv >/dev/null 2>&1 && ln -sf "$$(command -v uv)" $(VENV)/bin/uv || $(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -r requirements-dev.lock
	$(VENV)/bin/uv pip install --quiet --python $(PY) --no-deps -e .
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME) && cp dagster.yaml $@

## Generate sample extracts (if data/raw is empty), materialize the graph, print a summary.
demo: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(PY) -m mlops_assets.demo

## Run the test suite (what CI runs). Whole modules go to TEST_WORKERS parallel workers: the
## end-to-end tests mostly wait on Dagster's daemon loops and process starts, so on 2 cores 3 workers
## took 11 min where 1 took 16 (same hour); 4 slowed the crash tests past their bounds. Modules go
## out longest first, in conftest.py's order (not xdist's, by number of tests), and the three that
## run a whole deployment go to one worker, in turn (conftest.py, ONE_AT_A_TIME).
## Each process computes on one thread (scikit-learn's OpenMP, numpy's OpenBLAS; run workers and the
## compose stack inherit it): with 3 workers on 2 cores, the idle threads of one library spin-wait
## for their descheduled peers, and 3 HistGradientBoosting fits side by side took 48 s each with
## 2 threads and 3.3 s with 1 (1.4 s alone with 2). `make test TEST_THREADS=2` tests with more.
TEST_WORKERS ?= 3
TEST_THREADS ?= 1
PYTEST := OMP_NUM_THREADS=$(TEST_THREADS) OPENBLAS_NUM_THREADS=$(TEST_THREADS) \
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder
test: $(VENV)/.installed system-packages
	$(PYTEST)

## The in-process tests only (no dagster dev, browser, PostgreSQL or Docker): a quick check while
## editing. CI runs everything (`make test`).
test-fast: $(VENV)/.installed
	$(PYTEST) -m "not slow and not docker"

## Debian's chromium (browser tests), postgresql (the production-style instance test), and docker.io,
## docker-compose and debootstrap (the compose stack test, which starts the engine itself), installed
## with apt-get when missing and we are root; otherwise those tests skip and say why.
system-packages:
	@missing=""; command -v chromium >/dev/null || missing="chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	for tool in dockerd:docker.io docker-compose:docker-compose debootstrap:debootstrap; do \
	  command -v $${tool%%:*} >/dev/null || missing="$$missing $${tool#*:}"; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "apt-get install $$missing"; \
	  (apt-get install -y -q $$missing || (apt-get update -q && apt-get install -y -q $$missing)) >/dev/null; \
	elif [ -n "$$missing" ]; then echo "not installed: $$missing (their tests will skip)"; fi

## The Dagster UI with sensors and the daemon, on http://127.0.0.1:3000
dev: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster dev -h 127.0.0.1 -p 3000

## The campaign app (Streamlit) on the warehouse, on http://127.0.0.1:8501
app: $(VENV)/.installed
	$(PY) -m mlops_assets.app --address 127.0.0.1 --port 8501

## The MLflow UI on the project's store, on http://127.0.0.1:5000
mlflow-ui: $(VENV)/.installed
	$(VENV)/bin/mlflow ui --backend-store-uri "sqlite:///$(CURDIR)/data/mlflow/mlflow.db" --host 127.0.0.1 --port 5000

## Re-pin the dependency tree after editing pyproject.toml.
lock: $(VENV)/.installed
	$(VENV)/bin/uv pip compile pyproject.toml -o requirements.lock --python-version 3.11 --no-header --quiet
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev -o requirements-dev.lock --python-version 3.11 --no-header --quiet

clean:
	rm -rf $(VENV) $(DAGSTER_HOME)
