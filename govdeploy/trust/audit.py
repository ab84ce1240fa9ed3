"""The tamper-evident audit trail of governance events.

Each record is hash-chained to the one before (``prev``), hashed over its canonical JSON form and
signed with the audit key (Ed25519). After each append the new head (sequence number and hash) is
written to the object-locked bucket in COMPLIANCE mode, where the writer cannot delete or
overwrite it: a writer who rewrites the whole local log, signatures included, no longer matches
the anchors (``govdeploy.trust.anchors`` checks that the bucket really kept them). Appends from
several processes are serialised with a file lock.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import BaseModel, Field, ValidationError

from govdeploy.errors import AuditError
from govdeploy.trust.anchors import ANCHOR_PREFIX as ANCHOR_PREFIX
from govdeploy.trust.anchors import Anchor, AnchorStore, StoredAnchors, check_stored
from govdeploy.trust.anchors import S3Anchors as S3Anchors

GENESIS = "0" * 64


class AuditRecord(BaseModel):
    seq: int
    id: str
    time: str
    actor: str
    action: str
    model: str | None = None
    version: str | None = None
    policy_digest: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    prev: str
    hash: str = ""
    signature: str = ""

    def body(self) -> dict[str, Any]:
        return self.model_dump(exclude={"hash", "signature"})


def canonical(data: dict[str, Any]) -> bytes:
    """The canonical JSON bytes that are hashed and signed."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_hash(record: AuditRecord) -> str:
    return hashlib.sha256(canonical(record.body())).hexdigest()


Sealer = Callable[[bytes, str], dict[str, Any]]


class AuditLog:
    """Append-only, hash-chained, signed JSON-lines log with anchored heads.

    Personal data goes in ``sensitive``: it is sealed (encrypted, bound to the record id) by
    ``sealer`` and stored under ``payload["sealed"]``, so the log holds only ciphertext of it.
    """

    def __init__(
        self, path: Path, key: ed25519.Ed25519PrivateKey, anchors: AnchorStore, sealer: Sealer | None = None
    ) -> None:
        self.path, self.key, self.anchors, self.sealer = path, key, anchors, sealer

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.with_suffix(".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def append(
        self,
        action: str,
        actor: str,
        payload: dict[str, Any] | None = None,
        *,
        model: str | None = None,
        version: str | None = None,
        policy_digest: str | None = None,
        sensitive: dict[str, Any] | None = None,
    ) -> AuditRecord:
        """Write one record and anchor the new head; raise AuditError if either fails."""
        record_id = str(uuid.uuid4())
        payload = dict(payload or {})
        if sensitive:
            if self.sealer is None:
                raise AuditError(f"{action}: personal data given but no sealer (master key) configured")
            payload["sealed"] = self.sealer(canonical(sensitive), record_id)
        with self._locked():
            last = _last_record(self.path)
            record = AuditRecord(
                seq=last.seq + 1 if last else 1,
                id=record_id,
                time=datetime.now(UTC).isoformat(timespec="microseconds"),
                actor=actor,
                action=action,
                model=model,
                version=version,
                policy_digest=policy_digest,
                payload=payload,
                prev=last.hash if last else GENESIS,
            )
            record.hash = record_hash(record)
            record.signature = base64.b64encode(self.key.sign(bytes.fromhex(record.hash))).decode()
            with self.path.open("a", encoding="utf-8") as out:
                out.write(record.model_dump_json() + "\n")
                out.flush()
                os.fsync(out.fileno())
            try:
                self.anchors.put(Anchor(seq=record.seq, hash=record.hash, time=record.time))
            except Exception as exc:
                raise AuditError(
                    f"audit record {record.seq} ({action}) is written to {self.path} but its anchor "
                    f"could not be stored ({exc}); the next append anchors it, check the bucket"
                ) from exc
        return record


def _last_record(path: Path) -> AuditRecord | None:
    if not path.exists() or path.stat().st_size == 0:
        return None
    with path.open("rb") as handle:
        handle.seek(0, 2)
        end = handle.tell()
        block = min(end, 65536)
        handle.seek(end - block)
        lines = handle.read().splitlines()
    try:
        return AuditRecord.model_validate_json(lines[-1])
    except ValidationError as exc:
        raise AuditError(
            f"the last line of {path} is not an audit record; run 'govdeploy audit verify'"
        ) from exc


def read_records(path: Path) -> list[AuditRecord]:
    """Every record of the log, in file order (for display; use ``verify`` to check them)."""
    if not path.exists():
        return []
    return [AuditRecord.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]


class VerifyReport(BaseModel):
    """Problems fail the verification; warnings say what a passing one does not prove."""

    records: int
    anchors: int
    problems: list[str]
    warnings: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(path: Path, public_key: ed25519.Ed25519PublicKey, anchors: list[Anchor]) -> VerifyReport:
    """Check chain, hashes, signatures and anchors' content; every problem found is listed."""
    problems: list[str] = []
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    records: list[AuditRecord] = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(AuditRecord.model_validate_json(line))
        except ValidationError:
            problems.append(f"line {number} is not an audit record (edited or corrupted)")
    prev = GENESIS
    for position, record in enumerate(records, start=1):
        problems += _check_record(record, position, prev, public_key)
        prev = record.hash
    problems += _check_anchors(records, anchors)
    return VerifyReport(
        records=len(records), anchors=len(anchors), problems=problems, warnings=_gaps(records, anchors)
    )


def verify_stored(
    path: Path,
    public_key: ed25519.Ed25519PublicKey,
    stored: StoredAnchors,
    retention_days: int,
    now: datetime | None = None,
) -> VerifyReport:
    """``verify`` against the anchors as stored, and check how the bucket keeps them (lock, times,
    versions: see ``govdeploy.trust.anchors``)."""
    report = verify(path, public_key, stored.anchors())
    report.problems += check_stored(stored, retention_days, now or datetime.now(UTC))
    return report


def _check_record(
    record: AuditRecord, position: int, prev: str, public_key: ed25519.Ed25519PublicKey
) -> list[str]:
    problems = []
    if record.seq != position:
        problems.append(
            f"record at position {position} has seq {record.seq}: a record was deleted, inserted or moved"
        )
    if record.prev != prev:
        problems.append(f"record {record.seq} does not chain to the record before it")
    if record_hash(record) != record.hash:
        problems.append(
            f"record {record.seq} ({record.action}) was edited: its hash does not match its content"
        )
    try:
        public_key.verify(base64.b64decode(record.signature), bytes.fromhex(record.hash))
    except (InvalidSignature, ValueError):
        problems.append(f"record {record.seq} has no valid signature of the audit key")
    return problems


def _check_anchors(records: list[AuditRecord], anchors: list[Anchor]) -> list[str]:
    problems = []
    by_seq = {r.seq: r for r in records}
    reported: set[int] = set()
    for anchor in anchors:
        record = by_seq.get(anchor.seq)
        if anchor.seq in reported:
            continue
        if record is None:
            problems.append(
                f"anchor {anchor.seq} has no record: the log was truncated or records were removed "
                f"(it ends at {len(records)})"
            )
            reported.add(anchor.seq)
        elif record.hash != anchor.hash:
            problems.append(f"record {anchor.seq} differs from its anchor: the chain was rewritten")
            reported.add(anchor.seq)
        elif record.time != anchor.time:
            problems.append(
                f"anchor {anchor.seq} carries the time {anchor.time}, its record {record.time}: "
                "the anchor was not written by that record's append"
            )
            reported.add(anchor.seq)
    if records and (not anchors or anchors[-1].seq < records[-1].seq):
        last = anchors[-1].seq if anchors else 0
        problems.append(f"records {last + 1}..{records[-1].seq} are not anchored in the bucket")
    return problems


def _gaps(records: list[AuditRecord], anchors: list[Anchor]) -> list[str]:
    """Records before the last anchor without an anchor of their own: covered through the chain."""
    anchored = {a.seq for a in anchors}
    last = max(anchored, default=0)
    missing = [r.seq for r in records if r.seq < last and r.seq not in anchored]
    if not missing:
        return []
    shown = ", ".join(map(str, missing[:10])) + (f" and {len(missing) - 10} more" if missing[10:] else "")
    return [
        f"records {shown} have no anchor of their own (the anchor write failed, or the anchor was "
        "deleted); later anchors cover them through the hash chain"
    ]
