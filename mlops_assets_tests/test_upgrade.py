"""An upgrade keeps the data: a warehouse, a Dagster instance and an MLflow store written by an
earlier release (checked out from git history) are trained on and scored with the new code."""

import shutil
import subprocess
import sys

import dagster as dg
import duckdb
import pytest
from mlflow.tracking import MlflowClient

from mlops_assets.sample_data import generate_month, write_extract
from mlops_assets_tests.test_cli import REPO, cli_env, dagster_cli, mlops_batches

PREVIOUS_RELEASE = "5387aa4ce231b827fe906cb23cd071a9a1b54610"
"""The last commit before the retraining work reshaped the warehouse: `model` gained the candidate,
gate and calibration columns, `drift_history` the estimate and outcome columns, and the
`champion`, `model_candidates`, `model_data` and per-version reference tables appeared."""
ROWS = 6_000


@pytest.fixture
def previous_release(tmp_path):
    """The earlier release's files, from git history."""
    if subprocess.run(["git", "cat-file", "-e", f"{PREVIOUS_RELEASE}^{{commit}}"], cwd=REPO, capture_output=True).returncode:
        pytest.skip(f"commit {PREVIOUS_RELEASE[:7]} is not in this clone (a shallow clone?): the upgrade test needs history")
    folder = tmp_path / "previous_release"
    folder.mkdir()
    archive = subprocess.run(["git", "archive", PREVIOUS_RELEASE], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


@pytest.mark.slow
def test_an_upgrade_trains_and_scores_on_what_the_previous_release_wrote(tmp_path, previous_release):
    data, home = tmp_path / "data", tmp_path / "dagster_home"
    env = cli_env(data, home)
    shutil.copy(previous_release / "dagster.yaml", home / "dagster.yaml")  # its instance as it was configured
    generated = subprocess.run(  # the earlier release's own demo: samples, training, p5 scored
        [sys.executable, "-m", "mlops_assets.demo", "--rows", str(ROWS)], cwd=previous_release, env=env,
        capture_output=True, text=True, timeout=600,
    )
    assert generated.returncode == 0, generated.stdout[-2000:] + generated.stderr[-3000:]
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        assert "champion" not in {t for (t,) in con.execute("SHOW TABLES").fetchall()}  # really the old layout
        old_model_columns = {c for (c, *_) in con.execute("DESCRIBE model").fetchall()}
    assert "candidate" not in old_model_columns
    with dg.DagsterInstance.from_config(str(home)) as instance:
        old_runs = {run.run_id for run in instance.get_runs()}

    # the upgrade: the new code and its instance settings on the same folders. A new month is
    # scored first, by the champion the earlier release promoted, then a new month is learned from.
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    write_extract(generate_month(6, ROWS, seed=73, with_target=False), data / "raw" / "inference")
    assert mlops_batches("register", "p6_extrac", env=env).returncode == 0
    scored = dagster_cli("asset", "materialize", "-m", "mlops_assets.definitions", "--select",
                         "predictions,business_value,drift_report", "--partition", "p6_extrac", env=env, timeout=600)
    assert scored.returncode == 0, scored.stderr[-3000:]
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT DISTINCT model_version FROM predictions WHERE batch = 'p6_extrac'").fetchall() == [(1,)]
    write_extract(generate_month(5, ROWS, seed=71), data / "raw" / "training")  # a new month to learn from
    (data / "raw" / "training" / "p5_extrac.csv").replace(data / "raw" / "training" / "p5b_extrac.csv")
    trained = dagster_cli("job", "execute", "-m", "mlops_assets.definitions", "-j", "training_job", env=env, timeout=600)
    assert trained.returncode == 0, trained.stderr[-3000:]

    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        versions = con.execute("SELECT version, candidate IS NULL FROM model ORDER BY version").fetchall()
        reason = con.execute("SELECT promotion_reason FROM model WHERE version = 2").fetchall()[0][0]
        scored_batches = con.execute("SELECT batch, count(*) FROM predictions GROUP BY 1 ORDER BY 1").fetchall()
        champion = con.execute("SELECT max(version) FROM champion").fetchall()[0][0]
        judged = con.execute("SELECT batch FROM drift_history ORDER BY batch").fetchall()
    assert versions == [(1, True), (2, False)]  # the old row kept, its new columns empty
    assert "first model" not in reason and "champion" in reason, reason  # judged against the old release's champion
    assert scored_batches == [("p5_extrac", ROWS), ("p6_extrac", ROWS)]  # the old batch intact beside the new one
    assert judged == [("p5_extrac",), ("p6_extrac",)]
    mlflow = MlflowClient(tracking_uri=f"sqlite:///{data / 'mlflow' / 'mlflow.db'}")
    assert sorted(int(v.version) for v in mlflow.search_model_versions("name='cu_venta_propensity'")) == [1, 2]
    assert int(mlflow.get_model_version_by_alias("cu_venta_propensity", "champion").version) == champion
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = {run.run_id for run in instance.get_runs()}
    assert old_runs and old_runs < runs  # the earlier release's runs are still in the instance
