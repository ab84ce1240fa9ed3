"""Where the sealed I/O batches of a window are read from: the bucket, or a gateway's log directory.

A drift window lists every batch written from the start of its first day on (``batch_keys``); what
each key says of its batch (writer, sequence, previous day: ``BatchId``) is read before any batch is
opened, and a key no writer gives a batch fails the window (``batch_ids``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from govdeploy.backends import storage
from govdeploy.errors import CryptoError, DataError
from govdeploy.monitoring.completeness import INCOMPLETE
from govdeploy.monitoring.iorecords import (
    BATCH_SUFFIX,
    IOLOG_PREFIX,
    BatchId,
    IORecord,
    decode_batch_bytes,
    parse_batch_key,
)


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


def read_records(source: BatchSource, keys: Iterable[str], master_key: bytes) -> list[IORecord]:
    """Every record of the batches, whole (for tools and tests; a drift check reads in columns)."""
    found: list[IORecord] = []
    for key in keys:
        where = source.where(key)
        try:
            found += decode_batch_bytes(source.fetch(key), source.bucket_key(key), master_key, where)
        except (CryptoError, ValueError) as exc:
            raise DataError(f"I/O log batch {where} is unreadable ({exc})") from exc
    return found
