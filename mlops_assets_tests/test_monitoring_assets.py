"""The closed loop, in process: drifted labeled batch -> drift_report -> retrain -> promote -> rescore."""

import hashlib
import shutil

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mlops_assets import training, training_window
from mlops_assets.defs.sensors import RETRAIN_BATCH_TAG, drift_retrain_sensor
from mlops_assets.model_registry import CHAMPION_ALIAS
from mlops_assets.sample_data import NUMERIC_SHIFTED, generate_month, write_extract
from mlops_assets_tests.conftest import (
    TEST_REPORT_SAMPLE_ROWS,
    WITHOUT_HTML_REPORT,
    execute_request,
    failure_text,
    make_settings,
    run_job,
    score_batch,
    sql,
)

pytestmark = pytest.mark.long


@pytest.fixture
def loop(trained, tmp_path):
    """A copy of the trained folder, with its own MLflow artifacts, and a Dagster instance."""
    data = tmp_path / "data"
    shutil.copytree(trained.settings.data_dir, data)
    with dg.instance_for_test() as instance:
        yield make_settings(data), instance


def _sensor_requests(settings, instance, cursor=None):
    result = drift_retrain_sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources={"settings": settings}))
    return result.run_requests or [], result.cursor


BATCH_ROWS = 20_000
"""A retraining batch as large as a training month, so half of it is enough to learn a new concept."""


def _drop(settings, month, drift_scenario, labels, rows=8_000):
    sample = generate_month(month, rows, seed=19, drift=drift_scenario, with_target=labels)
    write_extract(sample, settings.inference_dir)
    return f"p{month}_extrac"


def _retrain_and_rescore(settings, instance, cursor=None):
    """Run what drift_retrain_sensor asks for until it asks for nothing more; returns the runs' jobs."""
    jobs = []
    while True:
        requests, cursor = _sensor_requests(settings, instance, cursor)
        if not requests:
            return jobs, cursor
        for request in requests:
            result = execute_request(settings, instance, request)
            assert result.success, failure_text(result)
            jobs.append((request.job_name, request.partition_key))


def test_a_drifted_labeled_batch_is_retrained_promoted_and_rescored(loop):
    settings, instance = loop
    batch = _drop(settings, 6, "numeric_shift", labels=True, rows=BATCH_ROWS)
    scored = score_batch(settings, instance, batch, assets=None)  # the whole batch run, HTML report included
    assert scored.success, failure_text(scored)
    [(drift_score, detected, retraining, champion, reference)] = sql(
        settings, "SELECT drift_score, drift_detected, retraining, champion_version, reference FROM drift_history WHERE batch = ?", [batch]
    )
    assert drift_score > 0.15 and detected and retraining.startswith("retraining due") and champion == 1
    assert reference == "champion v1's evaluation data: out-of-time month p4_extrac.csv (20,000 rows)"
    drifted = {c for (c,) in sql(settings, "SELECT \"column\" FROM drift_report WHERE batch = ? AND drifted", [batch])}
    assert drifted == set(NUMERIC_SHIFTED)
    assert settings.drift_flag_file.read_text() == "1\n"
    html = settings.reports_dir / batch / "drift_report.html"
    assert f"SAMPLED REPORT: {TEST_REPORT_SAMPLE_ROWS:,} reference rows and {TEST_REPORT_SAMPLE_ROWS:,} batch rows" in html.read_text() and (settings.reports_dir / batch / "drift_report.json").stat().st_size > 0
    # evidently's report for people judges with the pipeline's threshold, so the two agree
    assert "Dataset Drift is detected. Dataset drift detection threshold is 0.15" in html.read_text()

    requests, cursor = _sensor_requests(settings, instance)
    sha = hashlib.sha256((settings.inference_dir / f"{batch}.csv").read_bytes()).hexdigest()
    assert [(r.job_name, r.run_key, r.tags[RETRAIN_BATCH_TAG]) for r in requests] == [("training_job", f"retrain-{batch}-{sha[:16]}", batch)]
    assert requests[0].run_config == {"ops": {"raw_training": {"config": {"admit_batch": batch}}}}
    retrained = execute_request(settings, instance, requests[0])
    assert retrained.success, failure_text(retrained)
    # the window moved: the labeled batch joined, the oldest extract was archived, not deleted
    assert sorted(p.name for p in settings.training_dir.glob("*.csv")) == ["p2_extrac.csv", "p3_extrac.csv", "p4_extrac.csv", f"{batch}.csv"]
    assert [p.name for p in settings.archive_dir.iterdir()] == ["p1_extrac.csv"]
    # champion and challenger are compared on the held-out half of the batch; the other half is learned from
    held = training.held_out(pd.Series([str(k) for k in _keys(settings, batch)]), seed=settings.random_seed, share=settings.holdout_share)
    assert sql(settings, "SELECT source_file, split, count(*) FROM features WHERE source_file = ? GROUP BY ALL ORDER BY split", [f"{batch}.csv"]) == [
        (f"{batch}.csv", "test", int(held.sum())), (f"{batch}.csv", "train", int((~held).sum()))]
    assert 0.45 < held.mean() < 0.55
    [(version, promoted, reason, auc, champion_auc, test_file, candidate, evaluation)] = sql(
        settings, "SELECT version, promoted, promotion_reason, roc_auc, champion_auc_same_data, test_file, candidate, evaluation FROM model WHERE version = 2"
    )
    assert test_file == f"{batch}.csv" and evaluation == f"held-out 50% of {batch}.csv ({int(held.sum()):,} rows)"
    assert promoted and auc >= champion_auc - settings.promotion_tolerance, reason
    candidates = sql(settings, "SELECT candidate, roc_auc, won FROM model_candidates WHERE version = 2 ORDER BY roc_auc DESC")
    assert {c for c, _, _ in candidates} == {"window_uniform", "recent_weighted", "newest_only"}
    assert candidates[0][0] == candidate and candidates[0][2] and candidates[0][1] == pytest.approx(auc)
    client = mlflow.MlflowClient(tracking_uri=settings.tracking_uri)
    parent = client.get_run(sql(settings, "SELECT run_id FROM model WHERE version = 2")[0][0])
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert {(r.info.run_name, round(r.data.metrics["roc_auc"], 6)) for r in children} == {(c, round(a, 6)) for c, a, _ in candidates}

    requests, cursor = _sensor_requests(settings, instance, cursor)
    assert [(r.job_name, r.partition_key, r.run_key) for r in requests] == [("batch_job", batch, f"rescore-{batch}-v2")]
    rescored = execute_request(settings, instance, requests[0])
    assert rescored.success, failure_text(rescored)
    assert sql(settings, "SELECT DISTINCT model_version FROM predictions WHERE batch = ?", [batch]) == [(2,)]
    assert sql(settings, "SELECT DISTINCT model_version FROM business_value WHERE batch = ?", [batch]) == [(2,)]
    [(champion, outcome)] = sql(settings, "SELECT champion_version, retraining_outcome FROM drift_history WHERE batch = ?", [batch])
    assert champion == 2 and outcome.startswith(f"challenger v2 ({candidate}) promoted")
    assert int(client.get_model_version_by_alias(settings.registered_model_name, CHAMPION_ALIAS).version) == 2
    assert sql(settings, "SELECT version FROM champion ORDER BY promoted_at") == [(1,), (2,)]
    # the rescoring run's drift report does not start a second retraining for the same labeled data
    requests, cursor = _sensor_requests(settings, instance, cursor)
    assert requests == []

    # the reference followed the champion: the next month from the same drifted world is not flagged
    following = _drop(settings, 7, "numeric_shift", labels=False, rows=BATCH_ROWS)
    assert score_batch(settings, instance, following, assets=WITHOUT_HTML_REPORT).success
    [(drift_score, retraining, reference)] = sql(
        settings, "SELECT drift_score, retraining, reference FROM drift_history WHERE batch = ?", [following]
    )
    assert drift_score <= 0.15 and retraining == "not due", (drift_score, retraining)
    assert reference == f"champion v2's evaluation data: {evaluation}"
    assert _sensor_requests(settings, instance, cursor)[0] == []
    # ...and a later change is still caught: the old world's months differ from the new reference
    back = _drop(settings, 8, "none", labels=False, rows=BATCH_ROWS)
    assert score_batch(settings, instance, back, assets=WITHOUT_HTML_REPORT).success
    assert sql(settings, "SELECT drift_detected FROM drift_history WHERE batch = ?", [back]) == [(True,)]


def _keys(settings, batch):
    return [k for (k,) in sql(settings, "SELECT key_value FROM raw_training WHERE source_file = ?", [f"{batch}.csv"])]


def test_concept_change_is_learned_from_the_batch_that_triggered_retraining(loop):
    """Same features, a new relation to the target: the challenger learns it from half of the batch
    and beats the old champion on the other half by far more than 0.05, up to what the generator's
    oracle allows."""
    settings, instance = loop
    sample = generate_month(6, BATCH_ROWS, seed=19, drift="concept_change", with_target=True)
    write_extract(sample, settings.inference_dir)
    batch = "p6_extrac"
    assert score_batch(settings, instance, batch, assets=WITHOUT_HTML_REPORT).success
    [(drift_score, realized, champion_test_auc, concept, retraining)] = sql(
        settings, "SELECT drift_score, realized_auc, champion_test_auc, concept_drift, retraining FROM drift_history"
    )
    assert drift_score <= 0.15  # the features did not move...
    assert concept and realized < champion_test_auc - settings.auc_drop_tolerance and "realized AUC" in retraining  # ...the relation did
    jobs, _ = _retrain_and_rescore(settings, instance)
    assert jobs == [("training_job", None), ("batch_job", batch)]
    [(auc, champion_auc, candidate, promoted)] = sql(
        settings, "SELECT roc_auc, champion_auc_same_data, candidate, promoted FROM model WHERE version = 2"
    )
    held = training.held_out(sample.table.column("key_value").to_pandas().astype(str), seed=settings.random_seed, share=settings.holdout_share)
    target = sample.table.column("target").to_numpy()
    oracle = roc_auc_score(target[held], sample.true_probability[held])
    assert promoted and auc >= champion_auc + 0.05, (auc, champion_auc, candidate)
    assert auc <= oracle + 0.01 and champion_auc < oracle - 0.2, (auc, champion_auc, oracle)
    # the rescored batch is judged by the new champion on the half it did not learn from, whose
    # baseline is the new concept: the same rows and AUC it was promoted on, no concept drift left
    [(realized, champion_test_auc, concept, source)] = sql(
        settings, "SELECT realized_auc, champion_test_auc, concept_drift, labels_source FROM drift_history"
    )
    assert champion_test_auc == pytest.approx(auc) and realized == pytest.approx(auc) and not concept
    assert source == "the extract's target column (held-out 50% only: v2 learned from the rest)"


def test_drift_without_labels_is_recorded_and_does_not_retrain(loop):
    settings, instance = loop
    batch = _drop(settings, 6, "numeric_shift", labels=False)
    assert score_batch(settings, instance, batch, assets=WITHOUT_HTML_REPORT).success
    [(detected, realized, retraining)] = sql(settings, "SELECT drift_detected, realized_auc, retraining FROM drift_history")
    assert detected and realized is None and retraining.startswith("drift detected, retraining needs labels")
    requests, _ = _sensor_requests(settings, instance)
    assert requests == []


def test_drift_report_judges_the_features_the_scoring_step_read_and_the_file_gives_the_same_verdict(loop):
    """One read of the CSV per scoring run: `predictions` hands the parsed features to `drift_report`
    (which judges them even with the file gone, then removes them); judged again later, the batch is
    read from its file, with the same column scores."""
    settings, instance = loop
    batch = _drop(settings, 6, "numeric_shift", labels=False)
    assert score_batch(settings, instance, batch).success
    staged, path = settings.scored_features_file(batch), settings.inference_dir / f"{batch}.csv"
    assert staged.is_file()
    hidden = path.rename(path.with_suffix(".hidden"))
    judged = run_job(settings, "batch_job", partition_key=batch, instance=instance, asset_selection=[dg.AssetKey("drift_report")])
    assert judged.success, failure_text(judged)
    assert not staged.exists()
    from_staged = sql(settings, "SELECT \"column\", method, score, drifted FROM drift_report ORDER BY \"column\"")
    assert {c for c, _, _, drifted in from_staged if drifted} == set(NUMERIC_SHIFTED)
    hidden.rename(path)
    again = run_job(settings, "batch_job", partition_key=batch, instance=instance, asset_selection=[dg.AssetKey("drift_report")])
    assert again.success, failure_text(again)
    assert sql(settings, "SELECT \"column\", method, score, drifted FROM drift_report ORDER BY \"column\"") == from_staged


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
    assert _sensor_requests(settings, instance)[0] == []


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


def _shuffle_labels(path, seed=0):
    """Shuffle a CSV's `target` column in place: whoever learns from it learns noise."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame["target"] = np.random.default_rng(seed).permutation(frame["target"].to_numpy())
    frame.to_csv(path, index=False)


def test_a_retraining_whose_challenger_loses_keeps_the_champion_and_says_so(loop):
    settings, instance = loop
    batch = _drop(settings, 6, "numeric_shift", labels=True, rows=BATCH_ROWS)
    _shuffle_labels(settings.inference_dir / f"{batch}.csv")  # the drifted month's labels are noise
    assert score_batch(settings, instance, batch, assets=WITHOUT_HTML_REPORT).success
    [request], cursor = _sensor_requests(settings, instance)
    before = _folders(settings)
    retrained = execute_request(settings, instance, request)
    assert not retrained.success  # the winner is below the AUC floor: its blocking check fails the run
    assert _folders(settings) == before  # a failed retraining does not move the window
    [(gate_passed, promoted, reason)] = sql(settings, "SELECT gate_passed, promoted, promotion_reason FROM model WHERE version = 2")
    assert not gate_passed and not promoted and "below the floor" in reason
    assert sql(settings, "SELECT version FROM champion") == [(1,)]
    client = mlflow.MlflowClient(tracking_uri=settings.tracking_uri)
    assert int(client.get_model_version_by_alias(settings.registered_model_name, CHAMPION_ALIAS).version) == 1
    [(outcome,)] = sql(settings, "SELECT retraining_outcome FROM drift_history WHERE batch = ?", [batch])
    assert outcome.startswith("challenger v2") and "not promoted" in outcome
    assert outcome.endswith("next batches are judged against champion v1's evaluation data: out-of-time month p4_extrac.csv (20,000 rows)")
    requests, cursor = _sensor_requests(settings, instance, cursor)
    assert requests == []  # nothing to rescore
    # judging the same batch again asks for the same run key, which Dagster runs only once: the same
    # labeled data is not retrained on again and again
    assert score_batch(settings, instance, batch, assets=WITHOUT_HTML_REPORT).success
    [again], _ = _sensor_requests(settings, instance, cursor)
    assert again.run_key == request.run_key
    assert sql(settings, "SELECT retraining_outcome FROM drift_history WHERE batch = ?", [batch]) == [(outcome,)]


@pytest.mark.parametrize("scenario", ["none", "mild", "numeric_shift", "concept_change"])
def test_the_label_free_estimate_matches_realized_auc_unless_the_concept_changed(loop, scenario):
    """Expected ROC AUC from the champion's probabilities alone is within 0.02 of the AUC the labels
    give, when only the features moved; it cannot see a changed relation to the target."""
    settings, instance = loop
    batch = _drop(settings, 6, scenario, labels=True, rows=BATCH_ROWS)
    result = score_batch(settings, instance, batch, assets=WITHOUT_HTML_REPORT)
    assert result.success
    [(estimated, realized, estimated_top, realized_top)] = sql(
        settings,
        "SELECT estimated_auc, realized_auc, estimated_top_decile_positives, realized_top_decile_positives FROM drift_history",
    )
    [materialization] = result.asset_materializations_for_node("drift_report")
    assert materialization.metadata["estimated_auc"].value == pytest.approx(estimated)
    if scenario == "concept_change":
        assert realized < estimated - 0.2  # the estimate still believes in the old relation
    else:
        assert abs(estimated - realized) <= 0.02, (estimated, realized)
        assert abs(estimated_top - realized_top) <= 3 * np.sqrt(estimated_top), (estimated_top, realized_top)


def test_the_champion_is_calibrated_on_its_evaluation_data(trained):
    """The estimate relies on calibrated probabilities: checked on the rows the model was judged on."""
    [(calibration, estimated, auc)] = sql(trained.settings, "SELECT calibration_error, estimated_auc, roc_auc FROM model WHERE version = 1")
    assert calibration < 0.01 and abs(estimated - auc) < 0.02


def _folders(settings) -> dict[str, str]:
    """Every file of training/ and archive/ with its content hash."""
    return {
        f"{folder.name}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in (settings.training_dir, settings.archive_dir) if folder.is_dir() for p in folder.iterdir()
    }


def test_a_labeled_batch_joins_the_window_whatever_its_name(loop):
    settings, instance = loop
    sample = generate_month(6, 8_000, seed=19, drift="numeric_shift", with_target=True)
    write_extract(sample, settings.inference_dir).rename(settings.inference_dir / "junio.csv")
    assert score_batch(settings, instance, "junio", assets=WITHOUT_HTML_REPORT).success
    jobs, _ = _retrain_and_rescore(settings, instance)
    assert jobs == [("training_job", None), ("batch_job", "junio")]
    assert [p.name for p in training_window.window_files(settings.training_dir)] == [
        "p2_extrac.csv", "p3_extrac.csv", "p4_extrac.csv", "junio.csv"]
    assert sql(settings, "SELECT source_file, count(*) FROM raw_training WHERE source_file = 'junio.csv' GROUP BY 1") == [("junio.csv", 8_000)]
    assert sql(settings, "SELECT test_file, training_files FROM model WHERE version = 2") == [
        ("junio.csv", ["p2_extrac.csv", "p3_extrac.csv", "p4_extrac.csv", "junio.csv"])]


def test_a_failed_retraining_leaves_the_training_folders_exactly_as_they_were(loop):
    settings, instance = loop
    batch = _drop(settings, 6, "numeric_shift", labels=True)
    assert score_batch(settings, instance, batch, assets=WITHOUT_HTML_REPORT).success
    [request], _ = _sensor_requests(settings, instance)
    before = _folders(settings)
    path = settings.inference_dir / f"{batch}.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[frame.index[:5], "target"] = "2"  # the labels went bad after the batch was scored
    frame.to_csv(path, index=False)
    result = execute_request(settings, instance, request)
    assert not result.success and "row(s) have a `target` that is not 0 or 1" in failure_text(result)
    assert _folders(settings) == before
    assert sql(settings, "SELECT count(*) FROM model") == [(1,)]


def test_a_challenger_above_the_floor_but_worse_than_the_champion_is_refused(loop):
    settings, instance = loop
    weak = make_settings(settings.data_dir, max_training_rows=400, auc_floor=0.55)  # learns from a sliver of the window
    batch = _drop(weak, 6, "numeric_shift", labels=True)
    assert score_batch(weak, instance, batch, assets=WITHOUT_HTML_REPORT).success
    [request], cursor = _sensor_requests(settings, instance)
    result = execute_request(weak, instance, request)
    assert result.success, failure_text(result)  # the run did its job: the challenger is judged and refused
    [(auc, champion_auc, gate_passed, promoted, reason)] = sql(
        weak, "SELECT roc_auc, champion_auc_same_data, gate_passed, promoted, promotion_reason FROM model WHERE version = 2"
    )
    assert weak.auc_floor <= auc < champion_auc - weak.promotion_tolerance, (auc, champion_auc)
    assert not gate_passed and not promoted and "< champion" in reason
    assert sql(weak, "SELECT version FROM champion") == [(1,)]
    client = mlflow.MlflowClient(tracking_uri=weak.tracking_uri)
    assert int(client.get_model_version_by_alias(weak.registered_model_name, CHAMPION_ALIAS).version) == 1
    assert _sensor_requests(settings, instance, cursor)[0] == []  # no rescoring by a refused model
    [(outcome,)] = sql(weak, "SELECT retraining_outcome FROM drift_history WHERE batch = ?", [batch])
    assert f"{batch}.csv joined the training window" in outcome and "not promoted" in outcome
