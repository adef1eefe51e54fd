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


def realized_performance(target: np.ndarray, probability: np.ndarray) -> dict[str, float] | None:
    """How the scoring model did on the rows whose outcome is known (NaN target = not known yet):
    ROC AUC, top-decile lift and positives, calibration error. None without labels or with one class."""
    from mlops_assets import training

    target = np.asarray(target, dtype=np.float64)
    labeled = ~np.isnan(target)
    if labeled.sum() == 0 or len(np.unique(target[labeled])) < 2:
        return None
    y, p = target[labeled].astype(np.int64), np.asarray(probability, dtype=np.float64)[labeled]
    metrics = training.evaluate(y, p)
    return {
        "roc_auc": metrics["roc_auc"],
        "top_decile_lift": metrics["top_decile_lift"],
        "top_decile_positives": float(y[training.top_share_mask(p)].sum()),
        "calibration_error": training.calibration_error(y, p),
        "labeled_rows": float(labeled.sum()),
    }
