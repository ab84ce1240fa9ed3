"""Drift monitoring: the serving window from the gateway's I/O log, ground truth, and the decision.

The current data of a drift check is what the gateway answered in the window: its encrypted I/O
batches shipped to ``iolog/<day>/`` in the bucket. Prediction records of the serving version give
the rows (features and score); feedback records give ground truth, joined by request id. Anything
that cannot be read completely — a batch that does not open, a record without a feature — fails
the check with the reason: a decision on part of the evidence is worse than no decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel

from govdeploy.catalog import ModelSpec
from govdeploy.drift import DriftResult
from govdeploy.errors import CryptoError, DataError
from govdeploy.evaluation import performance_metrics
from govdeploy.gateway.iolog import BATCH_SUFFIX, IORecord, decode_batch_bytes
from govdeploy.policy import DriftPolicy
from govdeploy.reference import PREDICTION

IOLOG_PREFIX = "iolog/"
REQUEST_ID = "request_id"
Action = Literal["record", "retrain", "rollback_and_retrain"]


@dataclass(frozen=True)
class Window:
    """The gateway's answers of one version in [start, end), with the ground truth sent back so far."""

    model: str
    version: str
    start: datetime
    end: datetime
    rows: pd.DataFrame  # features, prediction, request_id
    labels: dict[str, int] = field(default_factory=dict)  # request id → label
    batches: int = 0
    other_versions: int = 0

    def labelled(self, label: str) -> pd.DataFrame:
        """The rows whose request got ground truth, with a ``label`` column."""
        joined = self.rows[self.rows[REQUEST_ID].isin(self.labels.keys())].copy()
        joined[label] = joined[REQUEST_ID].map(self.labels).astype(int)
        return joined


def window_bounds(hours: float, end: str | None, start: str | None = None) -> tuple[datetime, datetime]:
    """[start, end) in UTC from ISO 8601 times; ``end`` defaults to now, ``start`` to ``end - hours``."""
    stop = _utc(end, "end") if end else datetime.now(UTC)
    begin = _utc(start, "start") if start else stop - timedelta(hours=hours)
    if begin >= stop:
        raise DataError(f"the window start {begin.isoformat()} is not before its end {stop.isoformat()}")
    return begin, stop


def _utc(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise DataError(f"{name}={value!r} is not an ISO 8601 time, e.g. 2026-11-22T02:00:00+00:00") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def batch_keys(client: Any, bucket: str, start: datetime, end: datetime) -> list[str]:
    """Keys of the I/O batches that may hold records of [start, end] (listed by day, oldest first)."""
    keys: list[str] = []
    day = start.date()
    while day <= end.date():
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=f"{IOLOG_PREFIX}{day:%Y%m%d}/"):
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(BATCH_SUFFIX)]
        day += timedelta(days=1)
    return sorted(keys)


def read_records(client: Any, bucket: str, keys: Iterable[str], master_key: bytes) -> list[IORecord]:
    """Decrypt every batch; DataError naming the first one that cannot be read."""
    found: list[IORecord] = []
    for key in keys:
        where = f"s3://{bucket}/{key}"
        try:
            data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            found += decode_batch_bytes(data, key.rsplit("/", 1)[-1], master_key, where)
        except (CryptoError, ValueError) as exc:
            raise DataError(
                f"I/O log batch {where} is unreadable ({exc}); the window is incomplete, so no drift "
                "decision is taken: restore the batch from the bucket's versions or move the window"
            ) from exc
    return found


def build_window(
    records: Iterable[IORecord], spec: ModelSpec, model: str, version: str, start: datetime, end: datetime
) -> Window:
    """Rows of the version's successful predictions in [start, end); every label sent since start."""
    rows: list[dict[str, Any]] = []
    labels: dict[str, int] = {}
    other, iso_start, iso_end = 0, start.isoformat(), end.isoformat()
    for record in records:
        if record.model != model or record.status >= 300 or record.time < iso_start:
            continue
        if record.kind == "feedback":
            labels.update({str(item[REQUEST_ID]): int(item["label"]) for item in record.labels or []})
        elif record.kind == "predict" and record.time < iso_end:
            if record.version != version:
                other += 1
                continue
            rows += _prediction_rows(record, spec)
    frame = pd.DataFrame(rows, columns=[*spec.features, PREDICTION, REQUEST_ID])
    for column in spec.numeric_features:
        frame[column] = frame[column].astype(float)
    return Window(model, version, start, end, frame, labels, other_versions=other)


def _prediction_rows(record: IORecord, spec: ModelSpec) -> list[dict[str, Any]]:
    inputs, outputs = record.inputs or [], record.outputs or []
    if len(inputs) != len(outputs):
        raise DataError(
            f"I/O record {record.id} has {len(inputs)} input rows but {len(outputs)} predictions; the "
            "window is malformed, so no drift decision is taken"
        )
    rows = []
    for row, score in zip(inputs, outputs, strict=True):
        missing = [f for f in spec.features if f not in row]
        if missing:
            raise DataError(
                f"I/O record {record.id} lacks features {missing}; the window is malformed, so no drift "
                "decision is taken"
            )
        rows.append({**{f: row[f] for f in spec.features}, PREDICTION: score, REQUEST_ID: record.id})
    return rows


def require_rows(window: Window, minimum: int) -> None:
    if len(window.rows) < minimum:
        raise DataError(
            f"the window {window.start:%Y-%m-%d %H:%M} to {window.end:%Y-%m-%d %H:%M} UTC has "
            f"{len(window.rows)} predictions of {window.model} v{window.version}, fewer than the "
            f"{minimum} drift.min_rows of the policy; no decision is taken (widen drift.window_hours "
            "or wait for traffic)"
        )


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
