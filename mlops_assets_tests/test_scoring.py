"""Business value and execution groups on hand-made rows and as properties."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from mlops_assets.scoring import (
    EXECUTION_GROUPS,
    business_value,
    execution_groups,
    group_summary,
    markdown_table,
    priority,
)


def test_formula_on_hand_made_rows():
    probability = np.array([0.5, 0.2, 0.9, 0.3, 0.4, 0.1])
    contact = np.array([0.8, 0.5, np.nan, 0.6, 0.2, 0.4])
    monto = np.array([1000.0, 0.0, math.e, np.nan, 0.5, 1.0])
    valuation = business_value(probability, contact, monto)
    median_contact = np.median([0.8, 0.5, 0.6, 0.2, 0.4])
    expected = [
        0.5 * 0.8 * math.log(1000),  # the contract's formula
        0.0,  # monto 0 counts as 1: ln 1 = 0
        0.9 * median_contact * 1.0,  # missing contact probability: the batch median
        0.0,  # missing monto: no known amount, no value
        0.0,  # monto below 1 counts as 1: never a negative value
        0.0,
    ]
    assert valuation.value == pytest.approx(expected)
    assert valuation.contact_filled.tolist() == [False, False, True, False, False, False]
    assert valuation.monto_missing.tolist() == [False, False, False, True, False, False]
    assert valuation.contact_used[2] == pytest.approx(median_contact)


def test_no_contact_probability_at_all_gives_zero_not_nan():
    valuation = business_value(np.array([0.5, 0.6]), np.array([np.nan, np.nan]), np.array([100.0, 200.0]))
    assert valuation.value.tolist() == [0.0, 0.0]


unit = st.floats(0, 1, allow_nan=False)
maybe_missing = st.one_of(st.just(float("nan")), unit)
amount = st.one_of(st.just(float("nan")), st.floats(0, 1e9, allow_nan=False))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(unit, unit, maybe_missing, amount), min_size=1, max_size=50))
def test_value_is_finite_non_negative_and_monotone_in_probability(rows):
    p_low, p_extra, contact, monto = (np.array(c, dtype=float) for c in zip(*rows))
    p_high = np.minimum(p_low + p_extra, 1.0)
    low = business_value(p_low, contact, monto).value
    high = business_value(p_high, contact, monto).value
    assert np.isfinite(low).all() and (low >= 0).all()
    assert (high >= low - 1e-12).all()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=500))
def test_execution_groups_are_balanced_and_ordered(values):
    value = np.array(values)
    groups = execution_groups(value, tie_breaker=np.arange(len(value)).astype(str))
    sizes = np.bincount(groups, minlength=EXECUTION_GROUPS + 1)[1:]
    assert groups.min() >= 1 and groups.max() <= EXECUTION_GROUPS
    if len(value) >= EXECUTION_GROUPS:
        assert sizes.max() - sizes.min() <= 1
    else:
        assert sizes.max() == 1
    # a higher group number never holds a higher value than a lower group number
    for g in range(1, groups.max()):
        if (groups == g).any() and (groups == g + 1).any():
            assert value[groups == g].min() >= value[groups == g + 1].max()


def test_group_summary_and_markdown():
    frame = pd.DataFrame({"business_value": np.arange(20, dtype=float)})
    frame["execution_group"] = execution_groups(frame["business_value"].to_numpy())
    summary = group_summary(frame)
    assert summary["customers"].tolist() == [2] * 10
    assert summary["total_value"].sum() == pytest.approx(frame["business_value"].sum())
    assert summary.iloc[0]["total_value"] == 19 + 18
    table = markdown_table(summary)
    assert table.splitlines()[0] == "| execution_group | customers | total_value | mean_value | min_value |"
    assert "| 1 | 2 | 37.0000 | 18.5000 | 18.0000 |" in table


def test_priority_tiers_cover_every_group_and_never_rise_with_the_group():
    tiers = [priority(group)[0] for group in range(1, EXECUTION_GROUPS + 1)]
    assert tiers == sorted(tiers) and tiers[0] == 0 and tiers[-1] == 2
    assert priority(3) == (0, "high priority: call first") and priority(4)[0] == 1 and priority(8)[0] == 2
