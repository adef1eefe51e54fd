"""The model pipeline and its evaluation, without Dagster: quality against the generator's oracle."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mlops_assets import contract, training
from mlops_assets.sample_data import generate_month


def _frame(month: int, rows: int, seed: int = 21, drift: str = "none"):
    sample = generate_month(month, rows, seed=seed, drift=drift)
    return sample.table.to_pandas(), sample.true_probability


def test_out_of_time_auc_is_close_to_the_oracle():
    """Train on 3 months, test on the 4th (4 x 20k rows): within 0.03 of the true-probability AUC."""
    train = pd.concat([_frame(m, 20_000)[0] for m in (1, 2, 3)])
    test, true_probability = _frame(4, 20_000)
    pipeline = training.build_pipeline().fit(training.model_inputs(train), train[contract.TARGET])
    probability = pipeline.predict_proba(training.model_inputs(test))[:, 1]
    oracle_auc = roc_auc_score(test[contract.TARGET], true_probability)
    model_auc = roc_auc_score(test[contract.TARGET], probability)
    assert oracle_auc - model_auc < 0.03, (model_auc, oracle_auc)
    assert model_auc > 0.7


def test_pipeline_handles_missing_values_and_unseen_categories():
    train, _ = _frame(1, 5_000)
    pipeline = training.build_pipeline().fit(training.model_inputs(train), train[contract.TARGET])
    rows = training.model_inputs(train.head(4)).copy()
    rows.loc[rows.index[0], list(contract.NUMERIC_FEATURES)] = np.nan  # every feature missing
    rows.loc[rows.index[1], "ent_1erlntcrallsfm01"] = "BANCO_NUEVO"  # never seen in training
    rows.loc[rows.index[2], "ent_1erlntcrallsfm01"] = None
    probability = pipeline.predict_proba(rows)[:, 1]
    assert np.isfinite(probability).all() and ((probability > 0) & (probability < 1)).all()
    # an unseen bank is scored like a missing one, not like any known bank
    unseen, missing = rows.iloc[[1]].copy(), rows.iloc[[1]].copy()
    missing["ent_1erlntcrallsfm01"] = None
    assert pipeline.predict_proba(unseen)[0, 1] == pytest.approx(pipeline.predict_proba(missing)[0, 1])


def test_encoding_is_fitted_on_train_only():
    train, _ = _frame(1, 3_000)
    pipeline = training.build_pipeline().fit(training.model_inputs(train), train[contract.TARGET])
    encoder = pipeline.named_steps["encode"].named_transformers_["categorical"]
    assert {c for c in encoder.categories_[0] if c is not None} == set(train["ent_1erlntcrallsfm01"].dropna())


def test_evaluate_on_known_scores():
    y = np.array([0] * 90 + [1] * 10)
    perfect = np.r_[np.linspace(0, 0.4, 90), np.linspace(0.6, 1, 10)]
    metrics = training.evaluate(y, perfect)
    assert metrics["roc_auc"] == 1.0 and metrics["pr_auc"] == pytest.approx(1.0)
    assert metrics["top_decile_lift"] == pytest.approx(10.0) and metrics["top_decile_capture"] == pytest.approx(1.0)
    inverted = training.evaluate(y, 1 - perfect)
    assert inverted["roc_auc"] == 0.0 and inverted["top_decile_capture"] == 0.0
    assert training.evaluate(y, np.full(100, 0.1))["brier"] == pytest.approx(0.09)


def test_decision_threshold_flags_the_top_decile():
    probability = np.random.default_rng(0).beta(1, 20, 10_000)
    threshold = training.decision_threshold(probability)
    assert (probability >= threshold).mean() == pytest.approx(0.10, abs=0.001)
    assert threshold < 0.5  # a 0.5 cut-off would flag almost nobody at a few-percent positive rate


@pytest.mark.parametrize(
    ("challenger", "champion", "promote"),
    [(0.60, None, False), (0.70, None, True), (0.748, 0.75, True), (0.74, 0.75, False), (0.80, 0.75, True), (0.64, 0.5, False)],
)
def test_promotion_gate(challenger, champion, promote):
    decision = training.promotion_decision(challenger, champion, auc_floor=0.65, tolerance=0.005)
    assert decision.promote is promote
    assert f"{challenger:.4f}" in decision.reason
