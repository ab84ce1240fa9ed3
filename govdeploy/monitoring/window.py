"""The serving window of a drift check: the gateway's answers of one version, with ground truth.

The current data of a drift check is what the gateway answered in [start, end): its encrypted
I/O batches shipped to ``iolog/<day>/`` in the bucket, read in columns and checked to be whole by
``govdeploy.monitoring.window_columns``. Prediction records of the serving version give the rows
(features and score); feedback records give ground truth, joined by request id. A label counts
only if its request id was issued to the principal that sent it (``RequestIds``, checked by the
gateway already; here again, in depth): others are left out and counted. A record with a missing
feature, a null score or not as many scores as input rows fails the check with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from govdeploy.config.catalog import ModelSpec
from govdeploy.errors import DataError
from govdeploy.monitoring.retention import check_window_start
from govdeploy.release.reference import PREDICTION
from govdeploy.trust.request_ids import RequestIds

REQUEST_ID = "request_id"
MALFORMED = "the window is malformed, so no drift decision is taken"


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
    unowned_labels: int = 0  # labels left out: their request id was not issued to their sender
    writers: dict[str, tuple[int, int]] = field(default_factory=dict)  # writer → first, last sequence read

    def labelled(self, label: str) -> pd.DataFrame:
        """The rows whose request got ground truth, with a ``label`` column."""
        joined = self.rows[self.rows[REQUEST_ID].isin(self.labels.keys())].copy()
        joined[label] = joined[REQUEST_ID].map(self.labels).astype(int)
        return joined


def window_bounds(
    hours: float, end: str | None, start: str | None = None, io_log_days: int | None = None
) -> tuple[datetime, datetime]:
    """[start, end) in UTC from ISO 8601 times; ``end`` defaults to now, ``start`` to ``end - hours``.

    With ``io_log_days`` (the policy's ``retention.io_log_days``) a start older than the retention
    is refused: those records are deleted, and the window would miss them without a word."""
    stop = _utc(end, "end") if end else datetime.now(UTC)
    begin = _utc(start, "start") if start else stop - timedelta(hours=hours)
    if begin >= stop:
        raise DataError(f"the window start {begin.isoformat()} is not before its end {stop.isoformat()}")
    if io_log_days is not None:
        check_window_start(begin, io_log_days)
    return begin, stop


def _utc(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise DataError(f"{name}={value!r} is not an ISO 8601 time, e.g. 2026-11-22T02:00:00+00:00") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def window_from_table(
    table: pa.Table,
    spec: ModelSpec,
    model: str,
    version: str,
    start: datetime,
    end: datetime,
    request_ids: RequestIds,
) -> Window:
    """Rows of the version's successful predictions in [start, end); every label sent since start by
    the principal its request id was issued to."""
    in_scope = _all(
        pc.equal(table["model"], model),
        pc.less(table["status"], 300),
        pc.greater_equal(table["time"], start.isoformat()),
    )
    predictions = _all(in_scope, pc.equal(table["kind"], "predict"), pc.less(table["time"], end.isoformat()))
    ours = _all(predictions, pc.equal(table["version"], version))
    other = pc.sum(pc.and_not(predictions, ours)).as_py() or 0
    rows = _rows(table.filter(ours), spec)
    feedback = table.filter(_all(in_scope, pc.equal(table["kind"], "feedback")))
    labels, unowned = _labels(feedback, request_ids)
    return Window(model, version, start, end, rows, labels, other_versions=other, unowned_labels=unowned)


def _all(*conditions: Any) -> Any:
    """The conjunction of boolean arrays, a null (a missing field) counting as false."""
    mask = pc.fill_null(conditions[0], False)
    for condition in conditions[1:]:
        mask = pc.and_(mask, pc.fill_null(condition, False))
    return mask


def _rows(records: pa.Table, spec: ModelSpec) -> pd.DataFrame:
    inputs = records["inputs"].combine_chunks()
    outputs = records["outputs"].combine_chunks()
    ids = records["id"].combine_chunks()
    counts = [pc.fill_null(pc.list_value_length(a), 0) for a in (inputs, outputs)]
    uneven = pc.indices_nonzero(pc.not_equal(*counts))
    if len(uneven):
        at = uneven[0].as_py()
        rows, scores = counts[0][at], counts[1][at]
        raise DataError(f"I/O record {ids[at]} has {rows} input rows but {scores} predictions; {MALFORMED}")
    flat = pc.list_flatten(inputs)
    parents = pc.list_parent_indices(inputs)
    columns = {name: flat.field(name) for name in spec.features}
    missing = [pc.indices_nonzero(pc.is_null(column)) for column in columns.values()]
    first = min((m[0].as_py() for m in missing if len(m)), default=None)
    if first is not None:
        lacks = [name for name, column in columns.items() if not column[first].is_valid]
        raise DataError(f"I/O record {ids[parents[first].as_py()]} lacks features {lacks}; {MALFORMED}")
    scores = pc.list_flatten(outputs)
    if scores.null_count:
        at = pc.indices_nonzero(pc.is_null(scores))[0].as_py()
        raise DataError(f"I/O record {ids[parents[at].as_py()]} has a null prediction; {MALFORMED}")
    frame: pd.DataFrame = pa.table(
        {**columns, PREDICTION: scores, REQUEST_ID: pc.take(ids, parents)}
    ).to_pandas()
    return frame


def _labels(feedback: pa.Table, request_ids: RequestIds) -> tuple[dict[str, int], int]:
    """Request id → label of the labels sent by their request's principal; how many others there were."""
    feedback = feedback.filter(pc.is_valid(feedback["labels"]))  # list_flatten skips nulls, parents do not
    lists = feedback["labels"].combine_chunks()
    items = pc.list_flatten(lists)
    ids, values = items.field(REQUEST_ID), items.field("label")
    if ids.null_count or values.null_count:
        raise DataError(f"a feedback record has a label without request_id or label; {MALFORMED}")
    senders = pc.take(feedback["principal"].combine_chunks(), pc.list_parent_indices(lists))
    labels: dict[str, int] = {}
    unowned = 0
    for request_id, value, sender in zip(
        ids.to_pylist(), values.to_pylist(), senders.to_pylist(), strict=True
    ):
        if request_ids.issued_to(request_id, sender):
            labels[request_id] = value
        else:
            unowned += 1
    return labels, unowned


def require_rows(window: Window, minimum: int) -> None:
    if len(window.rows) < minimum:
        raise DataError(
            f"the window {window.start:%Y-%m-%d %H:%M} to {window.end:%Y-%m-%d %H:%M} UTC has "
            f"{len(window.rows)} predictions of {window.model} v{window.version}, fewer than the "
            f"{minimum} drift.min_rows of the policy; no decision is taken (widen drift.window_hours "
            "or wait for traffic)"
        )
