"""The generator writes the contract's schema, deterministically, with the ground truth it claims."""

import duckdb
import pytest
from sklearn.metrics import roc_auc_score

from mlops_assets import contract
from mlops_assets.extracts import check_extract
from mlops_assets.sample_data import (
    MILD_SHIFTED,
    NEW_BANK,
    NUMERIC_SHIFTED,
    TRUE_WEIGHTS,
    generate_extracts,
    generate_month,
    true_probability,
    write_extract,
)


def test_files_follow_the_contract(sample_raw):
    training = sorted(p.name for p in (sample_raw / "training").iterdir())
    assert training == ["p1_extrac.csv", "p2_extrac.csv", "p3_extrac.csv", "p4_extrac.csv"]
    assert [p.name for p in (sample_raw / "inference").iterdir()] == ["p5_extrac.csv"]
    con = duckdb.connect()
    check = check_extract(con, sample_raw / "training" / "p1_extrac.csv", with_target=True)
    assert check.columns == contract.ALL_COLUMNS
    assert check.extra_columns == () and check.invalid_values == {} and check.duplicate_keys == 0
    # DuckDB's own type sniffing agrees with the contract's roles
    described = con.execute(f"DESCRIBE SELECT * FROM read_csv('{sample_raw / 'training' / 'p1_extrac.csv'}')")
    sniffed = {name: kind for name, kind, *_ in described.fetchall()}
    for column in contract.NUMERIC_FEATURES + ("monto", "prob_value_contact", "p_fecinformacion", "target"):
        assert sniffed[column] in ("BIGINT", "DOUBLE"), column
    for column in contract.CATEGORICAL_FEATURES + ("grp_campecs06m", "partition", "codunicocli"):
        assert sniffed[column] == "VARCHAR", column
    # the inference month carries no label unless asked
    inference = check_extract(con, sample_raw / "inference" / "p5_extrac.csv", with_target=False)
    assert not inference.has_target


def test_realistic_values_and_missingness():
    month = generate_month(1, 20_000, seed=3).table.to_pandas()
    assert month["key_value"].is_unique
    assert set(month["partition"]) == {"p1"}
    assert set(month["p_fecinformacion"]) == {20240131}
    assert set(month["grp_campecs06m"].dropna()) == {"G1", "G2", "G3", "G4", "G5"}
    missing = month[list(contract.NUMERIC_FEATURES)].isna().mean()
    assert missing.between(0, 0.7).all() and (missing > 0.3).sum() >= 2 and (missing < 0.2).sum() >= 40
    assert month["ent_1erlntcrallsfm01"].isna().mean() > 0.3  # often missing, as the contract says
    assert (month["monto"].dropna() >= 0).all() and (month["monto"] == 0).any()
    assert set(month["flg_saltotppe12m"].dropna()) <= {0, 1}
    ratios = month[[c for c in contract.NUMERIC_FEATURES if c.startswith(("pct_", "prop_", "rat_"))]]
    assert ((ratios.stack() >= 0) & (ratios.stack() <= 1)).all()


def test_positive_rate_is_a_few_percent_and_follows_the_true_probability():
    month = generate_month(2, 50_000, seed=5)
    target = month.table["target"].to_numpy()
    assert 0.02 <= target.mean() <= 0.07
    assert abs(target.mean() - month.true_probability.mean()) < 0.005
    assert roc_auc_score(target, month.true_probability) > 0.7


def test_deterministic_per_seed(tmp_path):
    a = write_extract(generate_month(1, 2_000, seed=9), tmp_path / "a")
    b = write_extract(generate_month(1, 2_000, seed=9), tmp_path / "b")
    c = write_extract(generate_month(1, 2_000, seed=10), tmp_path / "c")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def _standardized_mean_shift(base, drifted, column):
    a, b = base[column].dropna(), drifted[column].dropna()
    return abs(b.mean() - a.mean()) / a.std()


def test_numeric_shift_moves_exactly_its_columns():
    base = generate_month(5, 20_000, seed=1).table.to_pandas()
    month = generate_month(5, 20_000, seed=1, drift="numeric_shift")
    drifted = month.table.to_pandas()
    assert month.drifted_columns == NUMERIC_SHIFTED and len(NUMERIC_SHIFTED) / 59 > 0.15
    for column in contract.NUMERIC_FEATURES:
        shift = _standardized_mean_shift(base, drifted, column)
        if column in NUMERIC_SHIFTED:
            assert shift > 0.1, column
        else:
            assert shift < 0.05, column


def test_mild_drift_is_small():
    base = generate_month(5, 20_000, seed=1).table.to_pandas()
    drifted = generate_month(5, 20_000, seed=1, drift="mild").table.to_pandas()
    shifts = [_standardized_mean_shift(base, drifted, c) for c in MILD_SHIFTED]
    assert max(shifts) < 0.05


def test_categorical_mix_changes_the_bank_mix_and_adds_an_unseen_bank():
    base = generate_month(5, 20_000, seed=1).table.to_pandas()["ent_1erlntcrallsfm01"]
    month = generate_month(5, 20_000, seed=1, drift="categorical_mix")
    drifted = month.table.to_pandas()["ent_1erlntcrallsfm01"]
    assert month.drifted_columns == contract.CATEGORICAL_FEATURES
    assert NEW_BANK in set(drifted) and NEW_BANK not in set(base)
    assert drifted.value_counts(normalize=True)["INTERBANK"] > 2 * base.value_counts(normalize=True)["INTERBANK"]


def test_concept_change_keeps_features_but_breaks_the_old_relation():
    month = generate_month(5, 50_000, seed=1, drift="concept_change")
    frame = month.table.to_pandas()
    old_concept = true_probability(
        {c: frame[c].to_numpy(dtype=float) for c in TRUE_WEIGHTS | {"pct_usotcrm01": 0}},
        frame["ent_1erlntcrallsfm01"].to_numpy(dtype=object),
    )
    target = frame["target"].to_numpy()
    assert roc_auc_score(target, month.true_probability) > 0.65
    assert roc_auc_score(target, old_concept) < roc_auc_score(target, month.true_probability) - 0.1
    assert month.drifted_columns == ()


def test_rejects_an_unknown_scenario(tmp_path):
    with pytest.raises(ValueError, match="unknown drift scenario"):
        generate_extracts(tmp_path, rows=10, drift="earthquake")
