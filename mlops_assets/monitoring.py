"""Judging a batch against the champion's training data: the parts that are not column drift."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class RetrainingVerdict:
    due: bool
    possible: bool
    reason: str
    concept_drift: bool
    """The champion's realized AUC on the labeled batch fell more than the tolerance."""


def retraining_verdict(
    drift_score: float,
    drift_threshold: float,
    realized_auc: float | None,
    champion_auc: float,
    auc_drop_tolerance: float,
    has_labels: bool,
) -> RetrainingVerdict:
    """Retraining is due on data drift above the threshold or on a realized-AUC drop (concept
    drift); it is only possible when the batch carries labels to learn from."""
    reasons = []
    concept_drift = realized_auc is not None and realized_auc < champion_auc - auc_drop_tolerance
    if drift_score > drift_threshold:
        reasons.append(f"drift_score {drift_score:.3f} > {drift_threshold}")
    if concept_drift:
        reasons.append(f"realized AUC {realized_auc:.3f} < champion {champion_auc:.3f} - {auc_drop_tolerance}")
    if not reasons:
        return RetrainingVerdict(False, has_labels, "not due", concept_drift)
    if not has_labels:
        return RetrainingVerdict(True, False, "drift detected, retraining needs labels (" + "; ".join(reasons) + ")", concept_drift)
    return RetrainingVerdict(True, True, "retraining due: " + "; ".join(reasons), concept_drift)


def realized_auc(target: np.ndarray, probability: np.ndarray) -> float | None:
    """The champion's AUC on a batch whose labels have arrived; None without labels or with one class."""
    from sklearn.metrics import roc_auc_score

    target = np.asarray(target, dtype=np.float64)
    labeled = ~np.isnan(target)
    if labeled.sum() == 0 or labeled.mean() < 1.0 or len(np.unique(target[labeled])) < 2:
        return None
    return float(roc_auc_score(target, probability))
