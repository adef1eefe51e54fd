"""Scoring a batch and valuing each customer: plain functions on arrays and DataFrames."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

EXECUTION_GROUPS = 10
"""The campaign works in deciles of value: group 1 is the most valuable tenth of the batch."""


@dataclasses.dataclass(frozen=True)
class Valuation:
    value: np.ndarray
    contact_used: np.ndarray
    """`prob_value_contact` as used: the extract's value, or the batch median where it was missing."""
    contact_filled: np.ndarray
    monto_missing: np.ndarray


def business_value(probability: np.ndarray, prob_value_contact: np.ndarray, monto: np.ndarray) -> Valuation:
    """`probability x prob_value_contact x ln(monto)`, per the contract, with explicit gaps.

    - `monto` of 0 counts as 1 (contract), and so does anything below 1 or missing: ln is then 0,
      so a customer without a known positive amount is worth 0, never negative, never NaN.
    - missing `prob_value_contact` is filled with the batch median: unknown contactability is
      treated as typical, not as unreachable (which would hide the customer from every campaign).
    """
    probability = np.asarray(probability, dtype=np.float64)
    contact = np.asarray(prob_value_contact, dtype=np.float64)
    amount = np.asarray(monto, dtype=np.float64)
    contact_missing = np.isnan(contact)
    monto_missing = np.isnan(amount)
    fill = np.nanmedian(contact) if (~contact_missing).any() else 0.0
    contact = np.where(contact_missing, fill, contact)
    log_amount = np.log(np.maximum(np.nan_to_num(amount, nan=1.0), 1.0))
    return Valuation(probability * contact * log_amount, contact, contact_missing, monto_missing)


def execution_groups(value: np.ndarray, tie_breaker: np.ndarray | None = None) -> np.ndarray:
    """Groups 1..10 of (as near as possible) equal size, 1 holding the highest values.

    Ties are broken by `tie_breaker` (e.g. `key_value`) so the grouping is reproducible.
    """
    value = np.asarray(value, dtype=np.float64)
    order = np.argsort(-value, kind="stable") if tie_breaker is None else np.lexsort((np.asarray(tie_breaker), -value))
    rank = np.empty(len(value), dtype=np.int64)
    rank[order] = np.arange(len(value))
    return (rank * EXECUTION_GROUPS // max(len(value), 1) + 1).astype(np.int8)


PRIORITY_TIERS = (
    (3, "high priority: call first"),
    (7, "medium priority: call when capacity allows"),
    (EXECUTION_GROUPS, "low priority: not worth a call this month"),
)
"""Upper execution group of each priority tier the call center works by, most urgent first."""


def priority(execution_group: int) -> tuple[int, str]:
    """The tier (0 = most urgent) and verdict the campaign team reads for one customer's execution group."""
    return next((rank, label) for rank, (upper, label) in enumerate(PRIORITY_TIERS) if execution_group <= upper)


def group_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Count, total and mean value per execution group: what the campaign team plans with."""
    summary = (
        frame.groupby("execution_group")["business_value"]
        .agg(customers="count", total_value="sum", mean_value="mean", min_value="min")
        .reset_index()
    )
    return summary.sort_values("execution_group")


def markdown_table(frame: pd.DataFrame, float_format: str = "{:,.4f}") -> str:
    """A small DataFrame as a Markdown table for Dagster metadata (no extra dependency)."""
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---:" for _ in frame.columns) + "|"
    rows = [
        "| " + " | ".join(float_format.format(v) if isinstance(v, float) else str(v) for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *rows])
