"""The I/O log's format: records, batch names and keys, sealed batches, PII tokens.

A batch is ``<day>/<name>`` under a gateway's log directory and ``iolog/<day>/<name>`` in the
bucket, with

    <day>  = YYYYMMDD of the write        <name> = <HHMMSSffffff>-<writer>-<sequence:08d>-<previous>.jsonl.enc

where ``<previous>`` is the day of the writer's batch ``sequence - 1`` (``00000000`` for its first).
The whole bucket key is bound as associated data when a batch is sealed, so a batch copied or moved
to another day, name, writer or sequence does not open, and a reader can tell from the keys alone
which batches of a writer must exist (``BatchId``; the drift window refuses gaps). Personal data in
inputs is tokenised by the caller with ``mask_pii`` before a record is built.

A record that cannot be serialised (a lone surrogate in a string, a value JSON has no form for) is
never dropped and never blocks its batch: ``record_line`` writes it as a record with the same id,
time, route, status and principal whose ``error`` names the failure, its payload escaped (or dropped
when even that does not serialise).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
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


def batch_time(day: str, name: str) -> datetime:
    """When batch ``name`` of ``day`` was written, as its name says (UTC)."""
    return datetime.strptime(day + name[:12], "%Y%m%d%H%M%S%f").replace(tzinfo=UTC)


def _escaped(value: Any) -> Any:
    """``value`` with every string (keys too) made encodable: unencodable characters become ``\\uXXXX``."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_escaped(str(key)): _escaped(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_escaped(item) for item in value]
    return value


def _number(value: Any, kind: type[int] | type[float]) -> Any:
    """``value`` if it is a finite ``kind`` (JSON has a form for it), else 0 of that kind."""
    return value if type(value) is kind and math.isfinite(value) else kind(0)


def unserialisable(record: IORecord, failure: Exception, *, keep_payload: bool = True) -> IORecord:
    """The record that says ``record`` could not be serialised: same id, time, kind, model, version,
    principal, route, status and latency (text escaped); ``error`` names the failure; its inputs,
    outputs and labels escaped if ``keep_payload``, else dropped."""
    texts = ("id", "time", "kind", "model", "version", "principal", "route")
    reason = _escaped(f"{type(failure).__name__}: {failure}")
    previous = f"; the response's error was {_escaped(record.error)}" if record.error else ""
    kept = "escaped" if keep_payload else "dropped"
    return IORecord.model_construct(
        **{name: _escaped(getattr(record, name)) for name in texts},
        status=_number(record.status, int),
        latency_ms=_number(record.latency_ms, float),
        error=f"I/O record not serialisable ({reason}); its payload was {kept}{previous}",
        **{
            name: _escaped(getattr(record, name)) if keep_payload else None
            for name in ("inputs", "outputs", "labels")
        },
    )


def _encode_all(value: Any) -> None:
    """Raise UnicodeEncodeError if a string in ``value`` (keys too) has no UTF-8 form."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, dict):
        for key, item in value.items():
            _encode_all(key)
            _encode_all(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _encode_all(item)


def _line(record: IORecord) -> str:
    """``record`` as one JSON line; raises if it cannot be serialised or encoded as UTF-8.

    The serialiser writes a key's lone surrogate as U+FFFD without a word: a line with U+FFFD is
    checked against the record, so that a record is never changed silently."""
    line = record.model_dump_json() + "\n"
    line.encode("utf-8")
    if "\ufffd" in line:
        _encode_all(record.model_dump())
    return line


def record_line(record: IORecord) -> str:
    """One JSON line of ``record``, always UTF-8 encodable; a record that cannot be serialised becomes
    the record that says so (``unserialisable``), its payload escaped, or dropped if need be."""
    try:
        return _line(record)
    except Exception as exc:
        failure = exc
    try:
        return _line(unserialisable(record, failure))
    except Exception:
        return _line(unserialisable(record, failure, keep_payload=False))


def encode_batch(records: list[IORecord], master_key: bytes, key: str) -> bytes:
    """The bytes of a batch file: the sealed JSON lines of ``records``, bound to its bucket ``key``.

    Every record gets a line: one that cannot be serialised is written as ``record_line`` says."""
    plaintext = "".join(record_line(record) for record in records).encode()
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
