"""Drift monitoring: performance on the ground truth so far, and the policy's decision.

The window itself (the gateway's answers and the labels sent back) is read by ``govdeploy.window``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel

from govdeploy.config.policy import DriftPolicy
from govdeploy.monitoring.drift import DriftResult
from govdeploy.release.evaluation import performance_metrics
from govdeploy.release.reference import PREDICTION

Action = Literal["record", "retrain", "rollback_and_retrain"]


class Performance(BaseModel):
    """ROC AUC on the labelled window against the signed training reference."""

    labelled_rows: int
    reference_roc_auc: float
    current_roc_auc: float
    current: dict[str, float]

    @property
    def drop(self) -> float:
        return round(self.reference_roc_auc - self.current_roc_auc, 4)


def performance(
    reference: pd.DataFrame, labelled: pd.DataFrame, label: str, minimum: int
) -> Performance | None:
    """None until ``minimum`` labelled rows with both classes have arrived."""
    if len(labelled) < minimum or labelled[label].nunique() < 2:
        return None
    scores = labelled[PREDICTION].to_numpy(dtype=float)
    truth = labelled[label].to_numpy(dtype=int)
    current = performance_metrics(truth, (scores >= 0.5).astype(int), scores)
    baseline = performance_metrics(
        reference[label].to_numpy(dtype=int),
        (reference[PREDICTION].to_numpy(dtype=float) >= 0.5).astype(int),
        reference[PREDICTION].to_numpy(dtype=float),
    )
    return Performance(
        labelled_rows=len(labelled),
        reference_roc_auc=baseline["roc_auc"],
        current_roc_auc=current["roc_auc"],
        current=current,
    )


class DriftDecision(BaseModel):
    """What the policy makes of one drift check."""

    action: Action
    reasons: list[str]
    drifted_share: float
    drifted_columns: list[str]
    max_drifted_share: float  # the policy's limit the share was judged against (and the report uses)
    data_drift: bool  # drifted_share >= max_drifted_share
    performance: Performance | None = None

    @property
    def drift_detected(self) -> bool:
        return self.action != "record"


def decide(policy: DriftPolicy, drift: DriftResult, perf: Performance | None) -> DriftDecision:
    """No drift → record; data drift → retrain; a performance drop over the limit → rollback, retrain."""
    reasons = []
    drifted = drift.share >= policy.max_drifted_share
    if drifted:
        reasons.append(
            f"{len(drift.drifted_columns)} of {len(drift.columns)} columns drifted ({drift.share:.0%} ≥ "
            f"{policy.max_drifted_share:.0%}): {', '.join(drift.drifted_columns)}"
        )
    dropped = perf is not None and perf.drop > policy.max_performance_drop
    if perf is not None and dropped:
        reasons.append(
            f"ROC AUC {perf.current_roc_auc:.3f} on {perf.labelled_rows} labelled rows vs "
            f"{perf.reference_roc_auc:.3f} at training: drop {perf.drop:.3f} over the limit "
            f"{policy.max_performance_drop}"
        )
    action: Action = "rollback_and_retrain" if dropped else "retrain" if drifted else "record"
    if action == "record":
        reasons.append(
            f"{len(drift.drifted_columns)} of {len(drift.columns)} columns drifted, under "
            f"{policy.max_drifted_share:.0%}" + ("" if perf is None else f"; ROC AUC drop {perf.drop:.3f}")
        )
    return DriftDecision(
        action=action,
        reasons=reasons,
        drifted_share=round(drift.share, 4),
        drifted_columns=list(drift.drifted_columns),
        max_drifted_share=policy.max_drifted_share,
        data_drift=drifted,
        performance=perf,
    )


def estimate_shift(reference: pd.DataFrame, current: pd.DataFrame) -> float:
    """For the bundled synthetic generator: the ``shift`` that best explains the window's incomes.

    The generator draws log-incomes around 10.8 + shift, so the difference of mean log-incomes is
    the shift of the newer data a retrain should learn from.
    """
    values = [
        np.log(frame["income"].to_numpy(dtype=float).clip(min=1.0)).mean() for frame in (reference, current)
    ]
    return round(float(values[1] - values[0]), 3)
