"""The training half of the graph, materialized for real against DuckDB and MLflow files."""

import hashlib
import re
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import mlflow
import pytest
from sklearn.metrics import roc_auc_score

from mlops_assets import contract
from mlops_assets.model_registry import CHAMPION_ALIAS
from mlops_assets_tests.conftest import TEST_ROWS, failure_text, make_settings, run_job, sql, table_snapshot



def test_training_job_fills_the_warehouse(trained):
    settings = trained.settings
    assert sql(settings, "SELECT source_file, count(*) FROM raw_training GROUP BY 1 ORDER BY 1") == [
        (f"p{m}_extrac.csv", TEST_ROWS) for m in (1, 2, 3, 4)
    ]
    columns = [r[0] for r in sql(settings, "SELECT column_name FROM information_schema.columns WHERE table_name = 'raw_training'")]
    assert columns == list(contract.ALL_COLUMNS) + ["source_file"]
    # out-of-time split: the newest extract is the test month, and only it
    assert sql(settings, "SELECT split, list(DISTINCT source_file ORDER BY source_file) FROM features GROUP BY 1 ORDER BY 1") == [
        ("test", ["p4_extrac.csv"]),
        ("train", ["p1_extrac.csv", "p2_extrac.csv", "p3_extrac.csv"]),
    ]
    feature_columns = {r[0] for r in sql(settings, "SELECT column_name FROM information_schema.columns WHERE table_name = 'features'")}
    assert set(contract.MODEL_FEATURES) <= feature_columns
    assert not set(contract.BUSINESS_COLUMNS) & feature_columns


def test_model_is_logged_registered_and_promoted(trained):
    settings = trained.settings
    [(version, run_id, uri, auc, lift, threshold, promoted, files)] = sql(
        settings,
        "SELECT version, run_id, model_uri, roc_auc, top_decile_lift, decision_threshold, promoted, training_files FROM model",
    )
    assert version == 1 and promoted and auc >= settings.auc_floor and lift > 2
    assert files == [f"p{m}_extrac.csv" for m in (1, 2, 3, 4)] and 0 < threshold < 0.5
    client = mlflow.MlflowClient(tracking_uri=settings.tracking_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["roc_auc"] == pytest.approx(auc)
    assert {"pr_auc", "log_loss", "brier", "top_decile_lift", "top_decile_capture"} <= set(run.data.metrics)
    assert run.data.tags["dagster_run_id"] == trained.run_id
    registered = client.get_model_version_by_alias(settings.registered_model_name, CHAMPION_ALIAS)
    assert int(registered.version) == version and registered.run_id == run_id
    assert uri == f"models:/{settings.registered_model_name}/1"
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.artifact_location == settings.artifact_location  # absolute, under the data folder
    assert Path(settings.data_dir, "mlflow", "artifacts").is_dir()
    # the logged model loads back and scores like the stored AUC says
    with duckdb.connect(settings.warehouse_file, read_only=True) as con:
        test = con.execute(f"SELECT {', '.join(contract.MODEL_FEATURES)}, target FROM features WHERE split = 'test'").df()
    # through this store's registry: models:/ alone would resolve against whatever tracking URI the process set last
    logged = mlflow.sklearn.load_model(client.get_model_version_download_uri(settings.registered_model_name, version))
    probability = logged.predict_proba(test[list(contract.MODEL_FEATURES)])[:, 1]
    assert roc_auc_score(test["target"], probability) == pytest.approx(auc)


def test_the_data_behind_the_champion_is_known_by_content_hash(trained):
    """Each file the model learned from, and its evaluation month, by SHA-256, in the warehouse and
    as the MLflow run's dataset inputs; ordinary training fits one candidate, out of time."""
    settings = trained.settings
    expected = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in settings.training_dir.glob("*.csv")}
    rows = sql(settings, "SELECT role, file_name, sha256, rows FROM model_data WHERE version = 1 ORDER BY role, file_name")
    assert rows == [("evaluation", "p4_extrac.csv", expected["p4_extrac.csv"], TEST_ROWS)] + [
        ("train", f"p{m}_extrac.csv", expected[f"p{m}_extrac.csv"], TEST_ROWS) for m in (1, 2, 3)
    ]
    [(run_id, candidate, evaluation, evaluation_sha)] = sql(settings, "SELECT run_id, candidate, evaluation, evaluation_sha256 FROM model")
    assert candidate == "window_uniform" and evaluation.startswith("out-of-time month p4_extrac.csv")
    assert evaluation_sha == expected["p4_extrac.csv"]
    assert sql(settings, "SELECT candidate, won FROM model_candidates") == [("window_uniform", True)]
    inputs = mlflow.MlflowClient(tracking_uri=settings.tracking_uri).get_run(run_id).inputs.dataset_inputs
    logged = {(i.dataset.name, {t.key: t.value for t in i.tags}["mlflow.data.context"], {t.key: t.value for t in i.tags}["sha256"]) for i in inputs}
    assert logged == {(name, "evaluation" if name == "p4_extrac.csv" else "training", sha) for name, sha in expected.items()}
    [(version, reference, reference_rows)] = sql(settings, "SELECT version, reference, reference_rows FROM champion")
    assert (version, reference_rows) == (1, TEST_ROWS) and "p4_extrac.csv" in reference
    # drift is judged against the data the champion was evaluated on: the out-of-time month
    assert sql(settings, "SELECT count(*), any_value(model_version) FROM drift_reference") == [(TEST_ROWS, 1)]


def test_asset_checks_pass(trained):
    assert trained.checks_passed == {
        "raw_training_matches_contract": True,
        "target_rate_is_plausible": True,
        "model_auc_above_floor": True,
        "champion_matches_mlflow_alias": True,
    }


@pytest.fixture
def copy_of_trained(trained, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(trained.settings.data_dir, data)
    return make_settings(data)


def _break_extract(path: Path, transform) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(transform(lines)) + "\n")


def _assert_intact(settings, before):
    for table, snapshot in before.items():
        assert table_snapshot(settings.warehouse_file, table) == snapshot, f"{table} changed"


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("missing_column", r"p4_extrac\.csv: missing required column\(s\) tea"),
        ("garbage", r"p4_extrac\.csv: non-numeric values in numeric column\(s\) ingreso_neto"),
    ],
)
def test_a_bad_training_extract_fails_clearly_and_changes_nothing(copy_of_trained, breakage, message):
    settings = copy_of_trained
    before = {t: table_snapshot(settings.warehouse_file, t) for t in ("raw_training", "features", "model")}
    path = settings.training_dir / "p4_extrac.csv"
    column = "tea" if breakage == "missing_column" else "ingreso_neto"

    def transform(lines):
        cells = [line.split(",") for line in lines]
        index = [h.strip('"') for h in cells[0]].index(column)
        if breakage == "missing_column":
            return [",".join(c[:index] + c[index + 1 :]) for c in cells]
        for row in cells[1:]:
            row[index] = "S/ 1200"  # an export with a currency prefix
        return [",".join(c) for c in cells]

    _break_extract(path, transform)
    result = run_job(settings, "training_job")
    assert not result.success
    assert re.search(message, failure_text(result)), failure_text(result)
    _assert_intact(settings, before)


def test_loading_the_same_window_again_keeps_what_validation_counted(copy_of_trained):
    """A second load keeps the rows of files read clean; a file with values nulled is read again, so
    its counts stay in the metadata and in `training_window`, and the table is the first load's."""
    settings = copy_of_trained
    column = "ingreso_neto"

    def a_few_currency_values(lines):
        cells = [line.split(",") for line in lines]
        index = [h.strip('"') for h in cells[0]].index(column)
        for row in cells[1::500]:
            row[index] = "S/ 1200"
        return [",".join(c) for c in cells]

    _break_extract(settings.training_dir / "p2_extrac.csv", a_few_currency_values)
    nulled, snapshots = [], []
    for _ in range(2):
        result = run_job(settings, "training_job", asset_selection=[dg.AssetKey("raw_training")])
        assert result.success, failure_text(result)
        nulled.append(result.asset_materializations_for_node("raw_training")[0].metadata["non_numeric_values_nulled"].value)
        snapshots.append(table_snapshot(settings.warehouse_file, "raw_training"))
    expected = {f"p2_extrac.csv:{column}": len(range(1, TEST_ROWS + 1, 500))}
    assert nulled == [expected, expected]
    assert snapshots[0] == snapshots[1]
    assert dict(sql(settings, "SELECT file_name, values_nulled FROM training_window")) == {
        "p1_extrac.csv": 0, "p2_extrac.csv": expected[f"p2_extrac.csv:{column}"], "p3_extrac.csv": 0, "p4_extrac.csv": 0,
    }


def test_an_empty_training_folder_fails_clearly(copy_of_trained):
    settings = copy_of_trained
    before = {t: table_snapshot(settings.warehouse_file, t) for t in ("raw_training", "model")}
    for path in settings.training_dir.glob("*.csv"):
        path.unlink()
    result = run_job(settings, "training_job")
    assert not result.success
    assert f"no training extracts (<name>.csv) in {settings.training_dir}" in failure_text(result)
    _assert_intact(settings, before)


def test_retraining_compares_with_the_champion_on_the_same_month(copy_of_trained):
    settings = copy_of_trained
    result = run_job(settings, "training_job")
    assert result.success, failure_text(result)
    rows = sql(settings, "SELECT version, roc_auc, champion_auc_same_data, promoted FROM model ORDER BY version")
    (v1, auc1, none, _), (v2, auc2, champion_auc, promoted) = rows
    assert (v1, v2, none) == (1, 2, None)
    assert champion_auc == pytest.approx(auc1)  # the champion re-scored on the same test month
    assert promoted == (auc2 >= auc1 - settings.promotion_tolerance)
