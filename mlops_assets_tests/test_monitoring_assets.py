"""The closed loop, in process: drifted labeled batch -> drift_report -> retrain -> promote -> rescore."""

import shutil

import dagster as dg
import mlflow
import numpy as np
import pytest

from mlops_assets.defs.sensors import RETRAIN_BATCH_TAG, drift_retrain_sensor
from mlops_assets.model_registry import CHAMPION_ALIAS
from mlops_assets.sample_data import NUMERIC_SHIFTED, generate_month, write_extract
from mlops_assets_tests.conftest import (
    WITHOUT_HTML_REPORT,
    execute_request,
    failure_text,
    make_settings,
    score_batch,
    sql,
)


@pytest.fixture
def loop(trained, tmp_path):
    """A copy of the trained folder, with its own MLflow artifacts, and a Dagster instance."""
    data = tmp_path / "data"
    shutil.copytree(trained.settings.data_dir, data)
    with dg.instance_for_test() as instance:
        yield make_settings(data), instance


def _sensor_requests(instance, cursor=None):
    result = drift_retrain_sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
    return result.run_requests or [], result.cursor


def _drop(settings, month, drift_scenario, labels, rows=8_000):
    sample = generate_month(month, rows, seed=19, drift=drift_scenario, with_target=labels)
    write_extract(sample, settings.inference_dir)
    return f"p{month}_extrac"


def test_a_drifted_labeled_batch_is_retrained_promoted_and_rescored(loop):
    settings, instance = loop
    batch = _drop(settings, 6, "numeric_shift", labels=True)
    scored = score_batch(settings, instance, batch, assets=None)  # the whole batch run, HTML report included
    assert scored.success, failure_text(scored)
    [(drift_score, detected, retraining, champion)] = sql(
        settings, "SELECT drift_score, drift_detected, retraining, champion_version FROM drift_history WHERE batch = ?", [batch]
    )
    assert drift_score > 0.15 and detected and retraining.startswith("retraining due") and champion == 1
    drifted = {c for (c,) in sql(settings, "SELECT \"column\" FROM drift_report WHERE batch = ? AND drifted", [batch])}
    assert drifted == set(NUMERIC_SHIFTED)
    assert settings.drift_flag_file.read_text() == "1\n"
    html = settings.reports_dir / batch / "drift_report.html"
    assert "SAMPLED REPORT" in html.read_text() and (settings.reports_dir / batch / "drift_report.json").stat().st_size > 0

    requests, cursor = _sensor_requests(instance)
    assert [(r.job_name, r.run_key, r.tags[RETRAIN_BATCH_TAG]) for r in requests] == [("training_job", f"retrain-{batch}", batch)]
    assert requests[0].run_config == {"ops": {"raw_training": {"config": {"admit_batch": batch}}}}
    retrained = execute_request(settings, instance, requests[0])
    assert retrained.success, failure_text(retrained)
    # the window moved: the labeled batch joined, the oldest extract was archived, not deleted
    assert sorted(p.name for p in settings.training_dir.glob("*.csv")) == ["p2_extrac.csv", "p3_extrac.csv", "p4_extrac.csv", f"{batch}.csv"]
    assert [p.name for p in settings.archive_dir.iterdir()] == ["p1_extrac.csv"]
    [(version, promoted, reason, auc, champion_auc, test_file)] = sql(
        settings, "SELECT version, promoted, promotion_reason, roc_auc, champion_auc_same_data, test_file FROM model WHERE version = 2"
    )
    assert test_file == f"{batch}.csv"  # judged out of time on the drifted month, like the champion
    assert promoted and auc >= champion_auc - settings.promotion_tolerance, reason

    requests, cursor = _sensor_requests(instance, cursor)
    assert [(r.job_name, r.partition_key, r.run_key) for r in requests] == [("batch_job", batch, f"rescore-{batch}-v2")]
    rescored = execute_request(settings, instance, requests[0])
    assert rescored.success, failure_text(rescored)
    assert sql(settings, "SELECT DISTINCT model_version FROM predictions WHERE batch = ?", [batch]) == [(2,)]
    assert sql(settings, "SELECT DISTINCT model_version FROM business_value WHERE batch = ?", [batch]) == [(2,)]
    assert sql(settings, "SELECT champion_version FROM drift_history WHERE batch = ?", [batch]) == [(2,)]
    client = mlflow.MlflowClient(tracking_uri=settings.tracking_uri)
    assert int(client.get_model_version_by_alias(settings.registered_model_name, CHAMPION_ALIAS).version) == 2
    # the rescoring run's drift report does not start a second retraining for the same batch
    requests, _ = _sensor_requests(instance, cursor)
    assert all(r.run_key == f"retrain-{batch}" for r in requests)


def test_concept_change_with_labels_records_the_auc_drop_and_requests_retraining(loop):
    settings, instance = loop
    batch = _drop(settings, 6, "concept_change", labels=True)
    assert score_batch(settings, instance, batch, assets=WITHOUT_HTML_REPORT).success
    [(drift_score, realized, champion_auc, concept, retraining)] = sql(
        settings, "SELECT drift_score, realized_auc, champion_test_auc, concept_drift, retraining FROM drift_history"
    )
    assert drift_score <= 0.15  # the features did not move...
    assert concept and realized < champion_auc - settings.auc_drop_tolerance  # ...the relation did
    assert "realized AUC" in retraining
    requests, _ = _sensor_requests(instance)
    assert [r.run_key for r in requests] == [f"retrain-{batch}"]


def test_drift_without_labels_is_recorded_and_does_not_retrain(loop):
    settings, instance = loop
    batch = _drop(settings, 6, "numeric_shift", labels=False)
    assert score_batch(settings, instance, batch, assets=WITHOUT_HTML_REPORT).success
    [(detected, realized, retraining)] = sql(settings, "SELECT drift_detected, realized_auc, retraining FROM drift_history")
    assert detected and realized is None and retraining.startswith("drift detected, retraining needs labels")
    requests, _ = _sensor_requests(instance)
    assert requests == []


def test_a_batch_like_the_training_data_is_not_drifted(loop):
    settings, instance = loop
    batch = _drop(settings, 6, "none", labels=True)
    result = score_batch(settings, instance, batch, assets=WITHOUT_HTML_REPORT)
    assert result.success
    [(drift_score, detected, realized, champion_auc, retraining)] = sql(
        settings, "SELECT drift_score, drift_detected, realized_auc, champion_test_auc, retraining FROM drift_history"
    )
    assert drift_score <= 0.15 and not detected and retraining == "not due"
    assert abs(realized - champion_auc) < 0.05
    assert settings.drift_flag_file.read_text() == "0\n"
    [materialization] = result.asset_materializations_for_node("drift_report")
    assert materialization.metadata["drift_score"].value == pytest.approx(drift_score)
    assert "| column | method | score | drifted |" in materialization.metadata["top_drifted_columns"].value
    assert _sensor_requests(instance)[0] == []


def test_a_worse_challenger_is_not_promoted_and_scoring_keeps_the_champion(loop):
    settings, instance = loop
    rng = np.random.default_rng(0)
    for path in settings.training_dir.glob("*.csv"):  # labels shuffled: the challenger learns noise
        lines = path.read_text().splitlines()
        header = [h.strip('"') for h in lines[0].split(",")]
        index = header.index("target")
        rows = [line.split(",") for line in lines[1:]]
        labels = [row[index] for row in rows]
        rng.shuffle(labels)
        for row, label in zip(rows, labels):
            row[index] = label
        path.write_text("\n".join([lines[0]] + [",".join(r) for r in rows]) + "\n")
    result = execute_request(settings, instance, dg.RunRequest(job_name="training_job"))
    assert not result.success  # the blocking AUC-floor check fails the run...
    [(promoted, reason)] = sql(settings, "SELECT promoted, promotion_reason FROM model WHERE version = 2")
    assert not promoted and "below the floor" in reason  # ...and the challenger was never promoted
    client = mlflow.MlflowClient(tracking_uri=settings.tracking_uri)
    assert int(client.get_model_version_by_alias(settings.registered_model_name, CHAMPION_ALIAS).version) == 1
    assert score_batch(settings, instance, "p5_extrac").success
    assert sql(settings, "SELECT DISTINCT model_version FROM predictions") == [(1,)]
