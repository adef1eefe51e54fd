"""Shared fixtures: small generated extracts in temporary folders, real DuckDB and MLflow stores."""

import dataclasses
import json
import os
import shutil
from pathlib import Path

import dagster as dg
import pytest
from filelock import FileLock

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")

from mlops_assets.definitions import build_definitions  # noqa: E402
from mlops_assets.sample_data import generate_extracts  # noqa: E402
from mlops_assets.settings import PipelineSettings  # noqa: E402

TEST_ROWS = 20_000
"""Rows per test extract: large enough for stable AUCs, small enough for a 2-core CI."""


@pytest.fixture(scope="session")
def sample_raw(tmp_path_factory) -> Path:
    """p1..p4 training and p5 inference extracts, generated once per session (read-only for tests)."""
    raw = tmp_path_factory.mktemp("sample") / "raw"
    generate_extracts(raw, rows=TEST_ROWS, months=5, seed=11)
    return raw


TEST_REPORT_SAMPLE_ROWS = 2_000
"""Rows per side of evidently's HTML report in tests: the report is for people; the drift decision
the tests check uses every row whatever this is."""


def make_settings(data_dir: Path, **overrides) -> PipelineSettings:
    return PipelineSettings(data_dir=str(data_dir), **{"report_sample_rows": TEST_REPORT_SAMPLE_ROWS, **overrides})


@pytest.fixture
def data_dir(tmp_path, sample_raw) -> Path:
    """A fresh data folder holding a copy of the sample extracts."""
    shutil.copytree(sample_raw, tmp_path / "data" / "raw")
    return tmp_path / "data"


def run_job(settings: PipelineSettings, job_name: str, **kwargs) -> dg.ExecuteInProcessResult:
    defs = build_definitions(settings)
    return defs.resolve_job_def(job_name).execute_in_process(raise_on_error=False, **kwargs)


@dataclasses.dataclass(frozen=True)
class Trained:
    settings: PipelineSettings
    run_id: str
    checks_passed: dict[str, bool]


@pytest.fixture(scope="session")
def trained(tmp_path_factory, sample_raw, worker_id) -> Trained:
    """A data folder where the training job already ran once: warehouse, MLflow store, champion v1.

    Session-scoped because training is the slow part, and shared by parallel workers (the first
    trains under a file lock, the others take what it wrote); tests that change it copy it first.
    """
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent  # the session's folder above every worker's own
    data, facts = shared / "trained" / "data", shared / "trained" / "run.json"
    with FileLock(shared / "trained.lock"):
        if not facts.exists():
            shutil.copytree(sample_raw, data / "raw")
            result = run_job(make_settings(data), "training_job")
            assert result.success, failure_text(result)
            checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
            facts.write_text(json.dumps({"run_id": result.run_id, "checks_passed": checks}))
    return Trained(make_settings(data), **json.loads(facts.read_text()))


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Every step failure's message, as a user reads it in the UI."""
    texts = []
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            texts.append(data.user_failure_data.description if data.user_failure_data else data.error.message)
    return "\n".join(texts)


def sql(settings: PipelineSettings, query: str, params=None) -> list[tuple]:
    """Rows of a query on the warehouse file, through a short read-only connection."""
    import duckdb

    with duckdb.connect(settings.warehouse_file, read_only=True) as con:
        return con.execute(query, params).fetchall()


def table_snapshot(database: str, table: str) -> tuple:
    """Row count and an order-independent checksum of a table, to prove it did not change."""
    import duckdb

    with duckdb.connect(database, read_only=True) as con:
        return con.execute(f"SELECT count(*), sum(hash(COLUMNS(*))) FROM {table}").fetchall()[0]


SCORING_ONLY = [dg.AssetKey("predictions"), dg.AssetKey("business_value")]
WITHOUT_HTML_REPORT = [*SCORING_ONLY, dg.AssetKey("drift_report")]
"""The batch assets but evidently's HTML report (~20 s a run)."""


def score_batch(
    settings: PipelineSettings, instance: dg.DagsterInstance, batch: str, assets: list | None = SCORING_ONLY
) -> dg.ExecuteInProcessResult:
    """What the folder sensor's run does: add the batch's partition and run `batch_job` for it
    (only the scoring assets unless `assets=None`: evidently's HTML report costs ~20 s a run)."""
    instance.add_dynamic_partitions("inference_batches", [batch])
    return run_job(settings, "batch_job", partition_key=batch, instance=instance, asset_selection=assets)


def execute_request(settings: PipelineSettings, instance: dg.DagsterInstance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """Run what a sensor requested, in process, with the request's job, config, tags and partition."""
    return run_job(
        settings,
        request.job_name,
        instance=instance,
        run_config=request.run_config,
        tags=request.tags,
        partition_key=request.partition_key,
    )


ONE_AT_A_TIME = ("test_docker_stack.py", "test_crash_recovery.py", "test_retraining_under_daemon.py")
"""Modules that run a whole deployment (daemon, code server, sensor-driven runs) for minutes. Three
of them beside each other on 2 cores put the load average over 20 and made every run 5-10x slower
(a 15 s fit took 200 s): CI failed so. They are one unit of work, run in turn on one worker. With
one compute thread per process (`make test`) side by side they passed, but the suite was no faster
(all three side by side 22 min against 19 in turn, different hours; crash recovery beside the other
two 14:09 against 13:45, same hour): the deployments' own processes still share 2 cores."""


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`--dist loadfile` (whole modules to workers), with the ONE_AT_A_TIME modules as one unit."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ModulesWithOneAtATime(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = super()._split_scope(nodeid)
            return "one at a time" if module.rsplit("/", 1)[-1] in ONE_AT_A_TIME else module

    return ModulesWithOneAtATime(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest modules first (the compose stack, those retraining in process, those starting dagster
    processes): `make test` hands modules to parallel workers in this order (xdist's own reordering,
    by number of tests, is turned off: it handed the one-test end-to-end modules out last, together),
    and a long one handed out last would run alone at the end."""
    order = ("docker", "long", "slow")

    def weight(item: pytest.Item) -> int:
        return next((rank for rank, mark in enumerate(order) if item.get_closest_marker(mark)), len(order))

    module_weight: dict[str, int] = {}
    for item in items:
        module_weight[item.module.__name__] = min(weight(item), module_weight.get(item.module.__name__, len(order)))
    items.sort(key=lambda item: module_weight[item.module.__name__])
