"""Outcomes that arrive after a batch was scored: labels_sensor -> batch_labels -> drift_report ->
retraining, in process on a real warehouse, MLflow store and Dagster instance."""

import os
import shutil
import time

import dagster as dg
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mlops_assets.defs.sensors import labels_sensor
from mlops_assets.sample_data import generate_month, write_extract
from mlops_assets_tests.conftest import WITHOUT_HTML_REPORT, execute_request, failure_text, make_settings, score_batch, sql, table_snapshot
from mlops_assets_tests.test_monitoring_assets import BATCH_ROWS, _retrain_and_rescore, _sensor_requests

pytestmark = pytest.mark.long

BATCH = "p6_extrac"


@pytest.fixture
def scored_without_labels(trained, tmp_path):
    """A copy of the trained folder where a concept-changed month was scored before its outcomes were known."""
    data = tmp_path / "data"
    shutil.copytree(trained.settings.data_dir, data)
    settings = make_settings(data)
    sample = generate_month(6, BATCH_ROWS, seed=19, drift="concept_change", with_target=False)
    write_extract(sample, settings.inference_dir)
    outcomes = generate_month(6, BATCH_ROWS, seed=19, drift="concept_change", with_target=True).table
    with dg.instance_for_test() as instance:
        assert score_batch(settings, instance, BATCH, assets=WITHOUT_HTML_REPORT).success
        yield settings, instance, outcomes.select(["key_value", "target"]).to_pandas()


def _deliver(settings, frame: pd.DataFrame, name: str = f"{BATCH}.csv"):
    """Drop a labels file atomically, as a well-behaved upstream job would."""
    settings.labels_dir.mkdir(parents=True, exist_ok=True)
    staging = settings.labels_dir / f".{name}.tmp"
    frame.to_csv(staging, index=False)
    time.sleep(0.05)  # the rename lands on a later clock tick than the last write
    os.replace(staging, settings.labels_dir / name)


def _labels_tick(settings, instance, cursor=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"settings": settings})
    result = labels_sensor(context)
    return result.run_requests or [], result.cursor


def test_late_labels_measure_the_model_and_drive_retraining(scored_without_labels):
    settings, instance, outcomes = scored_without_labels
    [(has_labels, realized, estimated)] = sql(settings, "SELECT has_labels, realized_auc, estimated_auc FROM drift_history")
    assert not has_labels and realized is None and estimated > 0.7  # before the outcomes, only the estimate
    delivered = pd.concat(  # 100 customers' outcomes are still missing, 5 labels belong to nobody in the batch
        [outcomes.iloc[100:], pd.DataFrame({"key_value": [f"X{i}" for i in range(5)], "target": [0] * 5})]
    )
    _deliver(settings, delivered)
    [request], _ = _labels_tick(settings, instance)
    assert (request.job_name, request.partition_key) == ("labels_job", BATCH)
    result = execute_request(settings, instance, request)
    assert result.success, failure_text(result)
    [stored] = result.asset_materializations_for_node("batch_labels")
    assert stored.metadata["unknown_keys_ignored"].value == 5 and stored.metadata["batch_rows_without_label"].value == 100
    assert sql(settings, "SELECT count(*), sum(target) FROM batch_labels") == [(BATCH_ROWS - 100, int(outcomes["target"].iloc[100:].sum()))]

    # realized metrics of the model version that scored each row, on the rows with an outcome
    scored = pd.DataFrame(sql(settings, "SELECT key_value, probability FROM predictions"), columns=["key_value", "probability"])
    truth = scored.merge(outcomes.iloc[100:].astype({"key_value": str}), on="key_value")
    [(has_labels, realized, labeled, source, concept, retraining, version)] = sql(
        settings, "SELECT has_labels, realized_auc, labeled_rows, labels_source, concept_drift, retraining, champion_version FROM drift_history"
    )
    assert has_labels and labeled == BATCH_ROWS - 100 and source == f"labels file {BATCH}.csv" and version == 1
    assert realized == pytest.approx(roc_auc_score(truth["target"], truth["probability"]))
    assert concept and "realized AUC" in retraining

    # retraining learns from the batch joined with its labels, and the rescored batch is measured again
    jobs, _ = _retrain_and_rescore(settings, instance)
    assert jobs == [("training_job", None), ("batch_job", BATCH)]
    admitted = pd.read_csv(settings.training_dir / f"{BATCH}.csv", dtype={"key_value": str})
    assert len(admitted) == BATCH_ROWS - 100 and admitted["target"].sum() == outcomes["target"].iloc[100:].sum()
    [(promoted, auc, champion_auc)] = sql(settings, "SELECT promoted, roc_auc, champion_auc_same_data FROM model WHERE version = 2")
    assert promoted and auc >= champion_auc + 0.05
    [(version, realized_after)] = sql(settings, "SELECT champion_version, realized_auc FROM drift_history")
    assert version == 2 and realized_after > realized + 0.05


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        ("label_not_binary", "row(s) have a `target` that is not 0 or 1"),
        ("duplicate_keys", "key_value(s) appear more than once"),
        ("another_batch", "are not rows of the scored batch: labels of another batch?"),
        ("header_only", "has a header but no labels"),
        ("no_target_column", "missing column(s) target"),
    ],
)
def test_a_bad_labels_file_is_rejected_with_its_reason_and_changes_nothing(scored_without_labels, breakage, reason):
    settings, instance, outcomes = scored_without_labels
    before = {t: table_snapshot(settings.warehouse_file, t) for t in ("predictions", "drift_history")}
    frame = outcomes.copy()
    if breakage == "label_not_binary":
        frame.loc[frame.index[:3], "target"] = 2
    elif breakage == "duplicate_keys":
        frame = pd.concat([frame, frame.head(10)])
    elif breakage == "another_batch":
        frame["key_value"] = frame["key_value"] + 1_000_000_000
    elif breakage == "header_only":
        frame = frame.head(0)
    else:
        frame = frame[["key_value"]]
    _deliver(settings, frame)
    [request], _ = _labels_tick(settings, instance)
    result = execute_request(settings, instance, request)
    assert not result.success and reason in failure_text(result), failure_text(result)
    assert f"{BATCH}.csv" in failure_text(result)
    rejected = settings.labels_dir / "rejected" / f"{BATCH}.csv"
    assert rejected.is_file() and reason in rejected.with_name(rejected.name + ".reason.txt").read_text()
    assert not (settings.labels_dir / f"{BATCH}.csv").exists()
    assert {t: table_snapshot(settings.warehouse_file, t) for t in before} == before
    assert sql(settings, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'batch_labels'") == [(0,)]
    assert _sensor_requests(settings, instance)[0] == []  # no retraining on labels that were refused


def test_labels_for_no_known_batch_are_set_aside_and_the_sensor_keeps_running(scored_without_labels):
    settings, instance, outcomes = scored_without_labels
    _deliver(settings, outcomes, name="p99_extrac.csv")
    requests, cursor = _labels_tick(settings, instance)
    assert requests == []
    reason = (settings.labels_dir / "rejected" / "p99_extrac.csv.reason.txt").read_text()
    assert "no scored batch named p99_extrac" in reason
    _deliver(settings, outcomes)  # the right file still goes through on the next tick
    [request], _ = _labels_tick(settings, instance, cursor)
    assert request.partition_key == BATCH


def test_labels_wait_while_their_batch_is_still_being_scored(scored_without_labels):
    settings, instance, outcomes = scored_without_labels
    write_extract(generate_month(7, 2_000, seed=3, with_target=False), settings.inference_dir)
    _deliver(settings, outcomes.head(50), name="p7_extrac.csv")
    requests, cursor = _labels_tick(settings, instance)
    assert requests == [] and (settings.labels_dir / "p7_extrac.csv").is_file()
    assert score_batch(settings, instance, "p7_extrac", assets=WITHOUT_HTML_REPORT).success
    [request], _ = _labels_tick(settings, instance, cursor)
    assert request.partition_key == "p7_extrac"
