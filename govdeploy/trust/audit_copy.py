"""The audit trail's records, and this machine's copy of the one chain every writer shares.

``AuditRecord`` is one record (hash-chained by ``prev``, hashed over its canonical JSON form, signed
with the audit key); ``LocalCopy`` keeps the local file up to date with the records other writers
claimed in the bucket, each checked under the audit keys valid at its time and chained to the head
(``govdeploy.trust.audit`` explains the whole trail; ``AuditLog`` there writes to it).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import BaseModel, Field, ValidationError

from govdeploy.errors import AuditError
from govdeploy.trust.anchors import Anchor, AnchorStore
from govdeploy.trust.audit_bounds import canonical
from govdeploy.trust.audit_file import Tail, read_tail
from govdeploy.trust.audit_keys import AuditKeys

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


def record_hash(record: AuditRecord) -> str:
    return hashlib.sha256(canonical(record.body())).hexdigest()


def head_record(path: Path, tail: Tail) -> AuditRecord | None:
    if tail.last is None:
        return None
    try:
        return AuditRecord.model_validate_json(tail.last)
    except ValidationError as exc:
        raise AuditError(
            f"the last complete line of {path} (byte offset {tail.start}) is not an audit record: "
            "the log was edited or corrupted, nothing is appended after it; run 'govdeploy audit verify'"
        ) from exc


class LocalCopy:
    """This machine's copy of the shared chain: brought up to date from the claims in the bucket,
    each checked under the audit public keys, by its time (no private key needed: readers sync too)."""

    def __init__(
        self, path: Path, public_key: ed25519.Ed25519PublicKey | AuditKeys, anchors: AnchorStore
    ) -> None:
        self.path, self.public_key, self.anchors = path, public_key, anchors
        self.keys = AuditKeys.of(public_key)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.with_suffix(".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def sync(self) -> AuditRecord | None:
        """Copy the records other writers claimed into the local file; the head after it."""
        with self._locked():
            tail = read_tail(self.path)
            if tail.torn:  # a crash mid-line: the next append repairs it
                return head_record(self.path, tail)
            return self._catch_up(head_record(self.path, tail))[0]

    def _catch_up(self, last: AuditRecord | None) -> tuple[AuditRecord | None, int]:
        """Append the records claimed after ``last`` (each checked); the new head, and the highest
        number claimed (burned numbers included)."""
        highest = last.seq if last else 0
        for claimed in self.anchors.after(highest):
            highest = max(highest, claimed.seq)
            record = claimed_record(claimed.anchor, last, self.keys)
            if record is not None:
                self._commit(record)
                last = record
        return last, highest

    def _commit(self, record: AuditRecord) -> None:
        with self.path.open("ab") as out:
            out.write(record.model_dump_json().encode() + b"\n")
            out.flush()
            os.fsync(out.fileno())


def claimed_record(anchor: Anchor | None, last: AuditRecord | None, keys: AuditKeys) -> AuditRecord | None:
    """The record an anchor claimed after ``last``, checked; None when the object is not a record
    of this chain (a burned number). AuditError when a signed record does not continue the chain:
    the bucket and this log disagree, nothing more is appended."""
    if anchor is None or anchor.record is None:
        return None
    try:
        record = AuditRecord.model_validate_json(anchor.record)
    except ValidationError:
        return None
    if keys.problem(record) is not None:
        return None
    if record.seq != anchor.seq or record_hash(record) != record.hash or anchor.hash != record.hash:
        return None
    if record.prev != (last.hash if last else GENESIS):
        raise AuditError(
            f"record {record.seq} claimed in the bucket is signed by the audit key but does not chain to "
            f"record {last.seq if last else 0} of this log: the log and the bucket disagree; run "
            "'govdeploy audit verify' and restore the log"
        )
    return record
