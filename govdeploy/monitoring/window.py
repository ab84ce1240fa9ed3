"""The serving window of a drift check, read from the gateway's I/O log in columns.

The current data of a drift check is what the gateway answered in [start, end): its encrypted
I/O batches shipped to ``iolog/<day>/`` in the bucket. Prediction records of the serving version
give the rows (features and score); feedback records give ground truth, joined by request id.
A label counts only if its request id was issued to the principal that sent it (``RequestIds``,
checked by the gateway already; here again, in depth): others are left out and counted.

A night's log holds a million records, so a window is read in columns, not record by record:
groups of batches are fetched, decrypted and parsed by Arrow's JSON reader against a schema made
from the model's features, in a thread pool (the S3 reads and the parsing release the GIL), and
the window is filtered and flattened with Arrow compute. Anything that cannot be read completely
— a batch that does not open, a record with a missing or wrongly typed feature, as many scores as
inputs — fails the check with the reason: a decision on part of the evidence is worse than none.

The evidence must also be whole (an insider may write to the bucket, without the keys). Each batch
is sealed for its whole key, which names its writer, its sequence and the day of its predecessor
(``govdeploy.monitoring.iolog``): a batch copied or moved to another key does not open. The keys
are every batch listed from the start of the window's first day on (``batch_keys``), and each
writer's batches among them must be a gap-free run of sequences: the one before a writer's first
listed batch may be absent only if it was written before that day. A record id seen twice (records
sealed twice) fails the check too, naming the ids and batches. Not detected: the deletion of a
writer's newest batches, which cannot be told apart from a writer that stopped.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from govdeploy.backends import storage
from govdeploy.config.catalog import ModelSpec
from govdeploy.errors import CryptoError, DataError, StorageError
from govdeploy.monitoring.completeness import BATCH, INCOMPLETE, refuse_repeated_records, writer_runs
from govdeploy.monitoring.iorecords import (
    BATCH_SUFFIX,
    IOLOG_PREFIX,
    BatchId,
    IORecord,
    decode_batch_bytes,
    open_batch_bytes,
    parse_batch_key,
)
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


@dataclass(frozen=True)
class BatchSource:
    """Where sealed batches are read from: the bucket, or a gateway's local log directory."""

    fetch: Callable[[str], bytes]
    location: str  # prefix of a key in messages, e.g. "s3://bucket/"
    prefix: str = ""  # prefix of a key that makes it the batch's bucket key (its associated data)

    def where(self, key: str) -> str:
        return f"{self.location}{key}"

    def bucket_key(self, key: str) -> str:
        return f"{self.prefix}{key}"


def bucket_source(client: Any, bucket: str) -> BatchSource:
    return BatchSource(lambda key: storage.require_object(client, bucket, key), f"s3://{bucket}/")


def directory_source(root: Path) -> BatchSource:
    """Batches under ``root`` by their path relative to it (``<day>/<name>``, as the gateway writes)."""
    return BatchSource(lambda key: (root / key).read_bytes(), f"{root}/", IOLOG_PREFIX)


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
    """Keys of every I/O batch written from the start of ``start``'s day to the end of ``end``'s.

    A batch is written after its records, by the clock that timed them, so none before ``start``'s
    day holds a record of the window; records before ``end`` may be in batches written after it,
    so a window is listed up to now (``end`` = now). Oldest day first, by name within a day.
    """
    keys: list[str] = []
    day = start.date()
    while day <= end.date():
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=f"{IOLOG_PREFIX}{day:%Y%m%d}/"):
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(BATCH_SUFFIX)]
        day += timedelta(days=1)
    return sorted(keys)


def record_schema(spec: ModelSpec) -> pa.Schema:
    """The fields of an I/O record a window uses, with the model's feature types."""
    features = pa.struct(
        [(f, pa.float64()) for f in spec.numeric_features]
        + [(f, pa.string()) for f in spec.categorical_features]
    )
    label = pa.struct([(REQUEST_ID, pa.string()), ("label", pa.int64())])
    return pa.schema(
        [
            ("id", pa.string()),
            ("time", pa.string()),
            ("kind", pa.string()),
            ("model", pa.string()),
            ("version", pa.string()),
            ("principal", pa.string()),
            ("status", pa.int64()),
            ("inputs", pa.list_(features)),
            ("outputs", pa.list_(pa.float64())),
            ("labels", pa.list_(label)),
        ]
    )


def read_window(
    source: BatchSource,
    keys: Sequence[str],
    master_key: bytes,
    spec: ModelSpec,
    model: str,
    version: str,
    start: datetime,
    end: datetime,
    workers: int = 8,
    group: int = 32,
) -> Window:
    """The window of ``model`` v``version`` from the batches ``keys`` of ``source``: every batch listed
    from the start of ``start``'s day on (``batch_keys``), whole runs of their writers."""
    ids = batch_ids(source, keys)
    schema = record_schema(spec)
    offsets = range(0, len(keys), group)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="govdeploy-window") as pool:
        tables = list(
            pool.map(
                lambda first: _read_group(
                    source, keys[first : first + group], first, master_key, schema, model
                ),
                offsets,
            )
        )
    table = pa.concat_tables(tables) if tables else _tag(schema.empty_table(), np.zeros(0, np.int32))
    names = [source.where(key) for key in keys]
    writers = writer_runs(ids, start.date(), dict(zip([batch.key for batch in ids], names, strict=True)))
    refuse_repeated_records(table, names)
    window = window_from_table(table, spec, model, version, start, end, RequestIds.from_master(master_key))
    return replace(window, batches=len(keys), writers=writers)


def batch_ids(source: BatchSource, keys: Iterable[str]) -> list[BatchId]:
    """What each key says of its batch; DataError naming a key that no writer gives a batch."""
    ids: list[BatchId] = []
    for key in keys:
        found = parse_batch_key(source.bucket_key(key))
        if found is None:
            raise DataError(
                f"I/O log batch {source.where(key)} is unreadable (its key is not iolog/<day>/<HHMMSSffffff>-"
                f"<writer>-<sequence>-<previous day>{BATCH_SUFFIX}, as a gateway names its batches); "
                f"{INCOMPLETE}: remove the object or move the window"
            )
        ids.append(found)
    return ids


def _read_group(
    source: BatchSource, keys: Sequence[str], first: int, master_key: bytes, schema: pa.Schema, model: str
) -> pa.Table:
    """One table of a group of batches (the ``first``-th of the keys on), its rows tagged with their
    batch; parsed together, and batch by batch if that fails."""
    plaintexts = [_open(source, key, master_key) for key in keys]
    lines = [text.count(b"\n") for text in plaintexts]  # one record per line
    try:
        table = _parse(b"".join(plaintexts), schema)
        if table.num_rows == sum(lines):
            return _tag(table, np.repeat(np.arange(first, first + len(keys), dtype=np.int32), lines))
    except pa.ArrowInvalid:
        pass
    tables = [
        parse_batch(text, schema, model, source.where(key))
        for key, text in zip(keys, plaintexts, strict=True)
    ]
    return pa.concat_tables(
        [_tag(part, np.full(part.num_rows, first + i, np.int32)) for i, part in enumerate(tables)]
    )


def _tag(table: pa.Table, batches: np.ndarray) -> pa.Table:
    return table.append_column(BATCH, pa.array(batches, type=pa.int32()))


def _open(source: BatchSource, key: str, master_key: bytes) -> bytes:
    where = source.where(key)
    try:
        text = open_batch_bytes(source.fetch(key), source.bucket_key(key), master_key, where)
    except (CryptoError, StorageError, OSError) as exc:
        raise DataError(
            f"I/O log batch {where} is unreadable ({exc}); {INCOMPLETE}: restore the batch from the "
            "bucket's versions or move the window"
        ) from exc
    return text if text.endswith(b"\n") or not text else text + b"\n"


def _parse(lines: bytes, schema: pa.Schema) -> pa.Table:
    if not lines or lines.isspace():
        return schema.empty_table()
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    # one block: a record is never split, however large the request it logs
    whole = pj.ReadOptions(use_threads=False, block_size=len(lines) + 1)
    return pj.read_json(io.BytesIO(lines), read_options=whole, parse_options=options)


def parse_batch(lines: bytes, schema: pa.Schema, model: str, where: str) -> pa.Table:
    """The records of one batch's JSON lines.

    Records of other models (whose inputs may have other types) are set aside before the typed
    parse; a record of ``model`` that does not fit the schema fails it with the batch's name.
    """
    try:
        return _parse(lines, schema)
    except pa.ArrowInvalid:
        pass
    try:
        ours = [
            line for line in lines.splitlines() if line.strip() and orjson.loads(line).get("model") == model
        ]
        return _parse(b"\n".join(ours), schema)
    except (orjson.JSONDecodeError, AttributeError, pa.ArrowInvalid) as exc:
        raise DataError(
            f"I/O log batch {where} holds a record of {model} that does not fit its inputs ({exc}); "
            + MALFORMED
        ) from None


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


def build_window(
    records: Iterable[IORecord],
    spec: ModelSpec,
    model: str,
    version: str,
    start: datetime,
    end: datetime,
    master_key: bytes,
) -> Window:
    """The window of records already in memory (the same reading as ``read_window``)."""
    lines = b"".join(record.model_dump_json().encode() + b"\n" for record in records)
    table = parse_batch(lines, record_schema(spec), model, "the records")
    refuse_repeated_records(table)
    return window_from_table(table, spec, model, version, start, end, RequestIds.from_master(master_key))


def read_records(source: BatchSource, keys: Iterable[str], master_key: bytes) -> list[IORecord]:
    """Every record of the batches, whole (for tools and tests; a drift check uses ``read_window``)."""
    found: list[IORecord] = []
    for key in keys:
        where = source.where(key)
        try:
            found += decode_batch_bytes(source.fetch(key), source.bucket_key(key), master_key, where)
        except (CryptoError, ValueError) as exc:
            raise DataError(f"I/O log batch {where} is unreadable ({exc})") from exc
    return found


def require_rows(window: Window, minimum: int) -> None:
    if len(window.rows) < minimum:
        raise DataError(
            f"the window {window.start:%Y-%m-%d %H:%M} to {window.end:%Y-%m-%d %H:%M} UTC has "
            f"{len(window.rows)} predictions of {window.model} v{window.version}, fewer than the "
            f"{minimum} drift.min_rows of the policy; no decision is taken (widen drift.window_hours "
            "or wait for traffic)"
        )
