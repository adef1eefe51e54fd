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


def test_scoring_in_chunks_gives_every_row_the_score_of_the_whole_frame():
    train, _ = _frame(1, 5_000)
    pipeline = training.build_pipeline().fit(training.model_inputs(train), train[contract.TARGET])
    batch = generate_month(2, 2_503, seed=5).table.select(list(contract.MODEL_FEATURES))  # nulls and categories included
    whole = pipeline.predict_proba(training.model_inputs(batch.to_pandas()))[:, 1]
    chunked = training.predict_positive(pipeline, batch, chunk_rows=1_000)  # 1,000 + 1,000 + 503 rows
    np.testing.assert_array_equal(chunked, whole)
    assert training.predict_positive(pipeline, batch.slice(0, 0)).shape == (0,)


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


def test_the_held_out_part_is_a_seeded_hash_of_the_key():
    keys = pd.Series([str(60_000_000 + i) for i in range(20_000)])
    held = training.held_out(keys, seed=42, share=0.5)
    assert 0.48 < held.mean() < 0.52
    shuffled = keys.sample(frac=1, random_state=0)
    assert (training.held_out(shuffled, seed=42, share=0.5) == held[shuffled.index]).all()  # row order does not matter
    assert (training.held_out(keys, seed=43, share=0.5) != held).mean() > 0.4  # another seed, another split
    assert 0.18 < training.held_out(keys, seed=42, share=0.2).mean() < 0.22


def test_candidate_training_sets():
    age = np.repeat([3, 2, 1, 0], [100, 100, 100, 60])
    in_sample = np.r_[np.ones(300, bool), np.zeros(60, bool)]
    [only] = training.candidate_training_sets(age, in_sample, retraining=False, min_rows=50, max_rows=1_000)
    assert only.name == "window_uniform" and (only.rows == np.arange(300)).all() and only.sample_weight is None
    uniform, weighted, newest = training.candidate_training_sets(age, in_sample, retraining=True, min_rows=50, max_rows=1_000)
    assert (weighted.rows == np.arange(360)).all()
    by_age = {a: weighted.sample_weight[age[weighted.rows] == a][0] for a in range(4)}
    assert by_age[0] == pytest.approx(2 * by_age[1]) == pytest.approx(8 * by_age[3]) and weighted.sample_weight.mean() == pytest.approx(1)
    assert newest.name == "newest_only" and (newest.rows == np.arange(300, 360)).all()
    assert [c.name for c in training.candidate_training_sets(age, in_sample, retraining=True, min_rows=61, max_rows=1_000)] == [
        "window_uniform", "recent_weighted"]
    # within a budget of rows, the newest month stays whole and the older months are sampled
    _, capped, _ = training.candidate_training_sets(age, in_sample, retraining=True, min_rows=50, max_rows=160)
    assert len(capped.rows) == 160 and set(range(300, 360)) <= set(capped.rows)


def test_a_candidate_that_learned_noise_never_wins():
    """The newest month's labels are shuffled: the candidate that learns only from it scores like a
    coin on a clean month and loses to the window."""
    frames = [_frame(m, 8_000)[0] for m in (1, 2, 3, 4)]
    frames[3]["target"] = np.random.default_rng(0).permutation(frames[3]["target"].to_numpy())
    train = pd.concat(frames, ignore_index=True)
    age = np.repeat([3, 2, 1, 0], 8_000)
    test, _ = _frame(5, 8_000)
    inputs = training.model_inputs(test[list(contract.MODEL_FEATURES)].copy())
    candidates = training.candidate_training_sets(age, np.ones(len(train), bool), retraining=True, min_rows=5_000, max_rows=32_000)
    results = [training.fit_candidate(c, train, train["target"].to_numpy(), inputs, test["target"].to_numpy(), 42) for c in candidates]
    winner, reason = training.choose_winner(results)
    noise = next(r for r in results if r.candidate.name == "newest_only")
    assert winner.candidate.name != "newest_only" and abs(noise.metrics["roc_auc"] - 0.5) < 0.05
    assert reason.startswith(f"{winner.candidate.name}: best ROC AUC") and "newest_only" in reason


def test_expected_roc_auc_equals_the_auc_labels_drawn_from_the_probabilities_give():
    rng = np.random.default_rng(1)
    probability = rng.beta(0.6, 12, 200_000)
    realized = [roc_auc_score(rng.random(probability.size) < probability, probability) for _ in range(5)]
    assert training.expected_roc_auc(probability) == pytest.approx(np.mean(realized), abs=0.003)
    assert training.expected_roc_auc(np.full(1_000, 0.1)) == pytest.approx(0.5)  # ties: no ordering at all
    assert training.expected_top_decile_positives(np.r_[np.full(90, 0.0), np.full(10, 0.5)]) == pytest.approx(5.0)


def test_calibration_error():
    rng = np.random.default_rng(2)
    probability = rng.beta(1, 20, 100_000)
    outcome = rng.random(probability.size) < probability
    assert training.calibration_error(outcome, probability) < 0.003
    assert training.calibration_error(outcome, probability * 2) > 0.03
