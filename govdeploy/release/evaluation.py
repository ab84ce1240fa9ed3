"""Evaluation of a model on labelled data: performance, fairness and privacy evidence.

Pure functions over a fitted model and a dataframe; the policy gate (``govdeploy.gate``) turns
this evidence into pass/fail checks.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import numpy as np
import pandas as pd
from pydantic import BaseModel
from sklearn import metrics as skm

from govdeploy.config.catalog import ModelSpec
from govdeploy.config.policy import PrivacyGate
from govdeploy.errors import DataError

PII_REGEXES: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    "phone": re.compile(r"\+?\d{1,3}[-. ]\(?\d{3}\)?[-. ]\d{3}[-. ]\d{4}\b"),
    "ssn": re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),
    "credit_card": re.compile(r"\b(?:\d[ -]?){13,16}\b"),
    "iban": re.compile(r"\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b"),
}


class Classifier(Protocol):
    def predict(self, x: pd.DataFrame) -> Any: ...
    def predict_proba(self, x: pd.DataFrame) -> Any: ...


class FairnessResult(BaseModel):
    attribute: str
    demographic_parity_difference: float
    equalized_odds_difference: float
    selection_rate: dict[str, float]
    group_size: dict[str, int]


class PrivacyFinding(BaseModel):
    kind: str  # "forbidden_feature" | "pii_value"
    column: str
    detail: str


class ModelEvaluation(BaseModel):
    """Evidence about one model on one evaluation dataset."""

    rows: int
    artifact_digest: str = ""
    submitted_by: str = ""  # from the version's signed candidate claims
    submission_proven: bool = False
    metrics: dict[str, float]
    fairness: list[FairnessResult]
    privacy: list[PrivacyFinding]


def require_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{what} lacks column(s) {missing}; the model catalog expects them")


def performance_metrics(y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray) -> dict[str, float]:
    """Binary classification metrics, rounded for display and stable comparisons."""
    values = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "f1": skm.f1_score(y_true, y_pred, zero_division=0),
        "precision": skm.precision_score(y_true, y_pred, zero_division=0),
        "recall": skm.recall_score(y_true, y_pred, zero_division=0),
        "roc_auc": skm.roc_auc_score(y_true, y_score) if len(set(y_true)) > 1 else float("nan"),
    }
    return {name: round(float(value), 4) for name, value in values.items()}


def fairness_result(
    attribute: str, y_true: np.ndarray, y_pred: np.ndarray, groups: pd.Series
) -> FairnessResult:
    """Fairlearn disparities of one sensitive attribute."""
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
        selection_rate,
    )

    frame = MetricFrame(metrics=selection_rate, y_true=y_true, y_pred=y_pred, sensitive_features=groups)
    return FairnessResult(
        attribute=attribute,
        demographic_parity_difference=round(
            float(demographic_parity_difference(y_true, y_pred, sensitive_features=groups)), 4
        ),
        equalized_odds_difference=round(
            float(equalized_odds_difference(y_true, y_pred, sensitive_features=groups)), 4
        ),
        selection_rate={str(k): round(float(v), 4) for k, v in frame.by_group.items()},
        group_size={str(k): int(v) for k, v in groups.value_counts().items()},
    )


def privacy_findings(features: list[str], sample: pd.DataFrame, rules: PrivacyGate) -> list[PrivacyFinding]:
    """Forbidden columns among the model's features, and PII patterns in feature values."""
    findings = [
        PrivacyFinding(
            kind="forbidden_feature",
            column=column,
            detail=f"{column!r} is a forbidden feature (personal or sensitive data)",
        )
        for column in features
        if column in set(rules.forbidden_features)
    ]
    rows = sample.head(rules.scan_rows)
    for column in [c for c in features if c in rows.columns]:
        values = rows[column].dropna().astype(str)
        for pattern in rules.scan_patterns:
            hits = int(values.str.contains(PII_REGEXES[pattern]).sum())
            if hits:
                findings.append(
                    PrivacyFinding(
                        kind="pii_value",
                        column=column,
                        detail=f"{hits} of {len(values)} sampled values of {column!r} look like {pattern}",
                    )
                )
    return findings


def evaluate_model(
    model: Classifier, frame: pd.DataFrame, spec: ModelSpec, features: list[str], rules: PrivacyGate
) -> ModelEvaluation:
    """Score a model on labelled data and collect performance, fairness and privacy evidence.

    ``features`` are the inputs the model was logged with (its MLflow signature), which may differ
    from the catalog's list: the privacy check is about what the model really consumes.
    """
    require_columns(frame, [spec.label, *spec.sensitive_attributes, *features], "evaluation data")
    x = frame[features]
    y_true = frame[spec.label].to_numpy(dtype=int)
    y_pred = np.asarray(model.predict(x)).astype(int)
    y_score = np.asarray(model.predict_proba(x))[:, 1]
    return ModelEvaluation(
        rows=len(frame),
        metrics=performance_metrics(y_true, y_pred, y_score),
        fairness=[
            fairness_result(attr, y_true, y_pred, frame[attr].astype(str))
            for attr in spec.sensitive_attributes
        ],
        privacy=privacy_findings(features, frame, rules),
    )
