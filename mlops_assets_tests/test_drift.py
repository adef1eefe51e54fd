"""Drift per column: equal to evidently's own report, and right about the generator's scenarios."""

import re

import numpy as np
import pandas as pd
import pytest

from mlops_assets import contract, drift, monitoring
from mlops_assets.sample_data import NUMERIC_SHIFTED, generate_month


def _frame(month, rows, drift_scenario="none", seed=3):
    return generate_month(month, rows, seed=seed, drift=drift_scenario).table.to_pandas()


def _judge(reference, current):
    return [
        drift.column_drift(c, reference[c].to_numpy(), current[c].to_numpy(), categorical=c in contract.CATEGORICAL_FEATURES)
        for c in contract.MODEL_FEATURES
    ]


@pytest.fixture(scope="module")
def reference():
    return pd.concat([_frame(m, 10_000) for m in (1, 2, 3)])


def test_scores_equal_evidently_report():
    """evidently's full DataDriftPreset on data small enough for it: same score per column (1e-3), same drifted set."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    reference = _frame(1, 4_000)[list(contract.MODEL_FEATURES)]
    current = pd.concat([_frame(5, 1_500, "numeric_shift"), _frame(6, 1_500, "categorical_mix")])[list(contract.MODEL_FEATURES)]
    definition = DataDefinition(numerical_columns=list(contract.NUMERIC_FEATURES), categorical_columns=list(contract.CATEGORICAL_FEATURES))
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition), Dataset.from_pandas(reference, data_definition=definition)
    )
    theirs = {}
    for metric in snapshot.dict()["metrics"]:
        found = re.match(r"ValueDrift\(column=([^,]+),method=([^,]+),threshold=([0-9.]+)\)", metric["metric_name"])
        if found:
            theirs[found.group(1)] = (float(metric["value"]), found.group(2), float(found.group(3)))
    assert set(theirs) == set(contract.MODEL_FEATURES)
    ours = {r.column: r for r in _judge(reference, current)}
    differences = {c: abs(ours[c].score - theirs[c][0]) for c in theirs}
    print(f"largest per-column difference from evidently: {max(differences.values()):.2e}")
    assert max(differences.values()) < 1e-3
    assert {c for c, r in ours.items() if r.drifted} == {c for c, (score, _, threshold) in theirs.items() if score >= threshold}
    methods = {c: ("wasserstein" if m.startswith("Wasserstein") else "jensenshannon") for c, (_, m, _) in theirs.items()}
    assert methods == {c: r.method for c, r in ours.items()}
    assert "jensenshannon" in methods.values() and "wasserstein" in methods.values()


def test_tiny_reference_defers_to_evidently():
    reference, current = _frame(1, 500), _frame(2, 500)
    result = drift.column_drift("tea", reference["tea"].to_numpy(), current["tea"].to_numpy(), categorical=False)
    assert result.method == "ks"  # evidently switches tests below 1,000 reference rows
    assert 0 <= result.score <= 1


@pytest.mark.parametrize("scenario", ["none", "mild", "concept_change"])
def test_no_feature_drift_where_the_generator_moved_no_feature(reference, scenario):
    results = _judge(reference, _frame(5, 10_000, scenario))
    assert drift.drift_share(results) <= 0.15
    assert [r.column for r in results if r.drifted] == []


def test_numeric_shift_is_detected_on_exactly_the_shifted_columns(reference):
    results = _judge(reference, _frame(5, 10_000, "numeric_shift"))
    assert {r.column for r in results if r.drifted} == set(NUMERIC_SHIFTED)
    assert drift.drift_share(results) == pytest.approx(len(NUMERIC_SHIFTED) / 59) and drift.drift_share(results) > 0.15


def test_categorical_mix_flags_the_categorical_column(reference):
    results = {r.column: r for r in _judge(reference, _frame(5, 10_000, "categorical_mix"))}
    assert results["ent_1erlntcrallsfm01"].drifted and results["ent_1erlntcrallsfm01"].method == "jensenshannon"
    assert sum(r.drifted for r in results.values()) == 1


def test_wasserstein_matches_scipy_with_ties_and_unequal_sizes():
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(1)
    reference = np.round(rng.lognormal(2, 1, 5_000), 1)
    current = np.round(rng.lognormal(2.2, 1, 1_234), 1)
    expected = wasserstein_distance(reference, current) / np.std(reference)
    assert drift.wasserstein_normed(np.sort(reference), np.sort(current)) == pytest.approx(expected, rel=1e-12)


def test_a_feature_missing_from_the_whole_batch_counts_as_drifted():
    result = drift.column_drift("tea", np.arange(2_000.0), np.full(100, np.nan), categorical=False)
    assert result.drifted and result.method == "all_missing"


@pytest.mark.parametrize(
    ("score", "realized", "labels", "due", "possible", "reason"),
    [
        (0.05, None, False, False, False, "not due"),
        (0.30, None, False, True, False, "drift detected, retraining needs labels"),
        (0.30, 0.74, True, True, True, "retraining due: drift_score 0.300 > 0.15"),
        (0.05, 0.60, True, True, True, "realized AUC 0.600 < champion 0.750 - 0.05"),
        (0.05, 0.72, True, False, True, "not due"),
    ],
)
def test_retraining_verdict(score, realized, labels, due, possible, reason):
    verdict = monitoring.retraining_verdict(score, 0.15, realized, 0.75, 0.05, labels)
    assert (verdict.due, verdict.possible) == (due, possible)
    assert reason in verdict.reason
