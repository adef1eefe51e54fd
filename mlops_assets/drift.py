"""Data drift per original model feature, computed the way evidently's DataDriftPreset does.

evidently picks, per column: normalized Wasserstein distance for numeric columns with more than
5 distinct values, Jensen-Shannon distance for categorical and low-cardinality ones (both with
threshold 0.1), once the reference has more than 1,000 rows. Its report computes each column
three times and builds plotly figures; here the same statistics are computed once, on all rows,
with sorted arrays. `mlops_assets_tests/test_drift.py` proves the scores equal evidently's.
Importing evidently costs ~8 s, so it is only imported for tiny references (where evidently
switches to other tests) and for the HTML report.
"""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

COLUMN_THRESHOLD = 0.1
"""evidently's default threshold for both the Wasserstein and the Jensen-Shannon test."""
LOW_CARDINALITY = 5
"""Numeric columns with at most this many distinct values are judged like categories."""
SMALL_REFERENCE = 1000
"""At or below this many reference rows evidently uses other tests; we then defer to evidently."""


@dataclasses.dataclass(frozen=True)
class ColumnDrift:
    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


def _not_missing(values: np.ndarray, categorical: bool) -> np.ndarray:
    if categorical:
        return pd.Series(values, dtype=object).dropna().to_numpy()
    values = np.asarray(values, dtype=np.float64)
    return values[np.isfinite(values)]


def wasserstein_normed(reference_sorted: np.ndarray, current_sorted: np.ndarray) -> float:
    """First Wasserstein distance between the two samples divided by the reference's std (floor 0.001).

    Both inputs sorted. Merging the two sorted runs (a stable sort of their concatenation is
    linear) gives every breakpoint of the two empirical CDFs; ties add zero-width steps.
    """
    n, m = len(reference_sorted), len(current_sorted)
    merged = np.concatenate([reference_sorted, current_sorted])
    order = np.argsort(merged, kind="stable")
    merged = merged[order]
    current_below = np.cumsum(order >= n)[:-1]
    reference_below = np.arange(1, n + m) - current_below
    distance_value = float(np.sum(np.abs(reference_below / n - current_below / m) * np.diff(merged)))
    return distance_value / max(float(np.std(reference_sorted)), 0.001)


def jensenshannon_on_values(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log) between the value frequencies of the two samples."""
    from scipy.spatial import distance  # ~0.5 s to import; every run worker loads this module

    reference_counts, current_counts = pd.Series(reference).value_counts(), pd.Series(current).value_counts()
    keys = reference_counts.index.union(current_counts.index)
    p = reference_counts.reindex(keys, fill_value=0).to_numpy() / len(reference)
    q = current_counts.reindex(keys, fill_value=0).to_numpy() / len(current)
    return float(distance.jensenshannon(p, q))


def column_drift(
    column: str, reference: np.ndarray, current: np.ndarray, *, categorical: bool, threshold: float = COLUMN_THRESHOLD
) -> ColumnDrift:
    """Drift of one column with evidently's default test for it; missing values are left out, as evidently does."""
    reference = _not_missing(reference, categorical)
    current = _not_missing(current, categorical)
    if len(current) == 0 or len(reference) == 0:
        # evidently refuses an all-missing column; a feature that vanished has drifted by any standard
        return ColumnDrift(column, "all_missing", 1.0, threshold, True)
    if len(reference) <= SMALL_REFERENCE:
        return _evidently_column_drift(column, reference, current, categorical, threshold)
    if categorical:
        return _decided(column, "jensenshannon", jensenshannon_on_values(reference, current), threshold)
    reference_sorted, current_sorted = np.sort(reference), np.sort(current)
    if _distinct_at_most(reference_sorted, current_sorted, LOW_CARDINALITY):
        return _decided(column, "jensenshannon", jensenshannon_on_values(reference_sorted, current_sorted), threshold)
    return _decided(column, "wasserstein", wasserstein_normed(reference_sorted, current_sorted), threshold)


def table_drift(reference: Any, current: Any, columns: tuple[str, ...], categorical: tuple[str, ...]) -> list[ColumnDrift]:
    """`column_drift` of each column of two Arrow tables, one column per core at a time: numpy's
    sorts release the GIL (59 columns at full scale: 5.1 s on one thread, 2.8 s on two cores)."""

    def judge(column: str) -> ColumnDrift:
        is_categorical = column in categorical
        return column_drift(
            column, _values(reference, column, is_categorical), _values(current, column, is_categorical), categorical=is_categorical
        )

    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        return list(pool.map(judge, columns))


def _values(table: Any, column: str, categorical: bool) -> np.ndarray:
    array = table.column(column)
    if categorical:
        return array.to_pandas().to_numpy(dtype=object)
    return array.to_numpy(zero_copy_only=False)


def _decided(column: str, method: str, score: float, threshold: float) -> ColumnDrift:
    return ColumnDrift(column, method, score, threshold, score >= threshold)  # evidently: drift when >= threshold


def _distinct_at_most(reference_sorted: np.ndarray, current_sorted: np.ndarray, limit: int) -> bool:
    """Whether the two samples together hold at most `limit` distinct values (inputs sorted)."""

    def distinct(values: np.ndarray) -> np.ndarray:
        return values[np.r_[True, values[1:] != values[:-1]]]

    reference_values = distinct(reference_sorted)
    return len(reference_values) <= limit and len(np.union1d(reference_values, distinct(current_sorted))) <= limit


def _evidently_column_drift(column, reference, current, categorical, threshold) -> ColumnDrift:
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    kind = ColumnType.Categorical if categorical else ColumnType.Numerical
    reference_series, current_series = pd.Series(reference), pd.Series(current)
    test = get_stattest(reference_series, current_series, kind, None)
    result = test(reference_series, current_series, kind, threshold)
    return ColumnDrift(column, test.name, float(result.drift_score), threshold, bool(result.drifted))


def drift_share(results: list[ColumnDrift]) -> float:
    """The `drift_score`: share of model features that drifted."""
    return sum(r.drifted for r in results) / len(results) if results else 0.0
