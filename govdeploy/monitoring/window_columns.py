"""Reading a drift window from the gateway's I/O log, in columns.

A night's log holds a million records, so a window is read in columns, not record by record:
groups of batches are fetched, decrypted and parsed by Arrow's JSON reader against a schema made
from the model's features, in a thread pool (the S3 reads and the parsing release the GIL), and
the window is filtered and flattened with Arrow compute (``govdeploy.monitoring.window``). Anything
that cannot be read completely — a batch that does not open, a record with a missing or wrongly
typed feature, as many scores as inputs — fails the check with the reason: a decision on part of
the evidence is worse than none.

The evidence must also be whole (an insider may write to the bucket, without the keys). Each batch
is sealed for its whole key, which names its writer, its sequence and the day of its predecessor
(``govdeploy.monitoring.iorecords``): a batch copied or moved to another key does not open. The keys
are every batch listed from the start of the window's first day on
(``govdeploy.monitoring.window_source.batch_keys``), and each writer's batches among them must be a
gap-free run of sequences: the one before a writer's first listed batch may be absent only if it was
written before that day. A record id seen twice (records sealed twice) fails the check too, naming
the ids and batches. Not detected: the deletion of a writer's newest batches, which cannot be told
apart from a writer that stopped.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.json as pj

from govdeploy.config.catalog import ModelSpec
from govdeploy.errors import CryptoError, DataError, StorageError
from govdeploy.monitoring.completeness import BATCH, INCOMPLETE, refuse_repeated_records, writer_runs
from govdeploy.monitoring.iorecords import IORecord, open_batch_bytes
from govdeploy.monitoring.window import MALFORMED, REQUEST_ID, Window, window_from_table
from govdeploy.monitoring.window_source import BatchSource, batch_ids
from govdeploy.trust.request_ids import RequestIds


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
