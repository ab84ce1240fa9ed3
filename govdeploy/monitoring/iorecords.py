"""The I/O log's format: records, batch names and keys, sealed batches, PII tokens.

A batch is ``<day>/<name>`` under a gateway's log directory and ``iolog/<day>/<name>`` in the
bucket, with

    <day>  = YYYYMMDD of the write        <name> = <HHMMSSffffff>-<writer>-<sequence:08d>-<previous>.jsonl.enc

where ``<previous>`` is the day of the writer's batch ``sequence - 1`` (``00000000`` for its first).
The whole bucket key is bound as associated data when a batch is sealed, so a batch copied or moved
to another day, name, writer or sequence does not open, and a reader can tell from the keys alone
which batches of a writer must exist (``BatchId``; the drift window refuses gaps). Personal data in
inputs is tokenised by the caller with ``mask_pii`` before a record is built.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from govdeploy.errors import CryptoError
from govdeploy.trust.encryption import Envelope, open_envelope, seal

BATCH_SUFFIX = ".jsonl.enc"
PARTIAL_SUFFIX = ".partial"
IOLOG_PREFIX = "iolog/"
WRITER_HEX = 16
NO_PREVIOUS = "00000000"  # the <previous> day of a writer's first batch
BATCH_KEY = re.compile(
    rf"{IOLOG_PREFIX}(?P<day>\d{{8}})/\d{{12}}-(?P<writer>[0-9a-f]{{{WRITER_HEX}}})-(?P<sequence>\d{{8,}})"
    rf"-(?P<previous>\d{{8}}){re.escape(BATCH_SUFFIX)}"
)


class IORecord(BaseModel):
    id: str
    time: str
    kind: str
    model: str | None
    version: str | None
    principal: str | None
    route: str
    status: int
    latency_ms: float
    inputs: list[dict[str, Any]] | None = None
    outputs: list[float] | None = None
    error: str | None = None
    # kind "feedback": ground-truth labels of earlier predictions, each {"request_id", "label"}
    labels: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class BatchId:
    """What a batch's bucket key says (and its encryption binds): day, writer, place in its sequence."""

    key: str  # iolog/<day>/<name>
    day: str
    writer: str
    sequence: int
    previous_day: str | None  # the day of the writer's batch sequence - 1; None for its first batch


def batch_key(day: str, name: str) -> str:
    """The bucket key of batch ``name`` of ``day``: its associated data too."""
    return f"{IOLOG_PREFIX}{day}/{name}"


def batch_name(moment: datetime, writer: str, sequence: int, previous_day: str | None) -> tuple[str, str]:
    """Day and file name of a writer's batch ``sequence`` written at ``moment``."""
    previous = previous_day or NO_PREVIOUS
    return f"{moment:%Y%m%d}", f"{moment:%H%M%S%f}-{writer}-{sequence:08d}-{previous}{BATCH_SUFFIX}"


def parse_batch_key(key: str) -> BatchId | None:
    """The ``BatchId`` of a bucket key, or None if the key is not one a writer gives its batches."""
    found = BATCH_KEY.fullmatch(key)
    if found is None:
        return None
    sequence, previous = int(found["sequence"]), found["previous"]
    if sequence < 1 or (sequence == 1) != (previous == NO_PREVIOUS):
        return None  # a first batch has no previous day, and every other batch has one
    return BatchId(key, found["day"], found["writer"], sequence, None if sequence == 1 else previous)


def pii_token(value: Any, secret: bytes) -> str:
    """The deterministic token of one value: 'tok_' + 32 hex chars of HMAC-SHA256(secret, str(value))."""
    return "tok_" + hmac.new(secret, str(value).encode(), hashlib.sha256).hexdigest()[:32]


def mask_pii(row: dict[str, Any], pii_fields: Iterable[str], secret: bytes) -> dict[str, Any]:
    """Return a copy where each PII field's value is replaced by its token (see ``pii_token``).

    The token is 'tok_' + the first 32 hex chars of HMAC-SHA256(secret, str(value)): the same value
    always gives the same token. Other fields are unchanged and a None value stays None.
    """
    fields = set(pii_fields)
    return {
        key: pii_token(value, secret) if key in fields and value is not None else value
        for key, value in row.items()
    }


def encode_batch(records: list[IORecord], master_key: bytes, key: str) -> bytes:
    """The bytes of a batch file: the sealed JSON lines of ``records``, bound to its bucket ``key``."""
    plaintext = "".join(record.model_dump_json() + "\n" for record in records).encode()
    return json.dumps(seal(plaintext, master_key, key).model_dump()).encode()


def decode_batch(path: Path, master_key: bytes) -> list[IORecord]:
    """The records of one batch file ``<day>/<name>``; CryptoError if it does not open under its key."""
    key = batch_key(path.parent.name, path.name)
    return decode_batch_bytes(path.read_bytes(), key, master_key, str(path))


def open_batch_bytes(data: bytes, key: str, master_key: bytes, where: str) -> bytes:
    """The JSON lines of a batch's bytes (file or bucket object ``where``) sealed for bucket ``key``."""
    try:
        envelope = Envelope.model_validate_json(data)
    except ValidationError:
        raise CryptoError(f"{where} is not an encrypted I/O log batch; it does not open") from None
    return open_envelope(envelope, master_key, key)


def decode_batch_bytes(data: bytes, key: str, master_key: bytes, where: str) -> list[IORecord]:
    """The records of a batch's bytes (file or bucket object ``where``) sealed for bucket ``key``."""
    plaintext = open_batch_bytes(data, key, master_key, where)
    return [IORecord.model_validate_json(line) for line in plaintext.splitlines() if line.strip()]


def batch_files(directory: Path) -> list[Path]:
    """Every complete batch file under ``directory``, oldest first (by day, then time of day)."""
    if not directory.is_dir():
        return []
    return sorted(directory.glob(f"*/*{BATCH_SUFFIX}"), key=lambda p: (p.parent.name, p.name))


def read_batches(directory: Path, master_key: bytes) -> list[IORecord]:
    """Decrypt and return every record of every batch file under directory, oldest batch first."""
    return [record for path in batch_files(directory) for record in decode_batch(path, master_key)]
