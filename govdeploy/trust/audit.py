"""The tamper-evident audit trail of governance events.

Each record is hash-chained to the one before (``prev``), hashed over its canonical JSON form and
signed with the audit key (Ed25519). After each append the new head (sequence number and hash) is
written to the object-locked bucket in COMPLIANCE mode, where the writer cannot delete or
overwrite it: a writer who rewrites the whole local log, signatures included, no longer matches
the anchors (``govdeploy.trust.anchors`` checks that the bucket really kept them).

Appends from several processes (the flows, the gateway) are serialised with ``fcntl.flock`` on
``<log>.lock``: reading the head, writing the line and anchoring it happen under the lock, so the
chain never forks. A record is committed once its line ends with a newline. Appending always
works whatever was written before:

- every field is capped first (``bounded``, ``govdeploy.trust.audit_bounds``): text too long is
  cut and marked with how many characters were cut and the sha256 of the full value, deep or wide
  structures are summarised the same way, so a record stays small and still proves what it saw;
- the head is read backwards from the end of the file, whatever the length of its lines
  (``govdeploy.trust.audit_file``);
- a torn last line (unterminated: a crash mid-append) is copied to ``<log>.torn-<offset>-<sha>``,
  cut off, and an ``audit.repaired`` record saying what was found continues the chain from the
  last complete record. Only the unterminated last line counts as torn, and only when no anchor
  lies beyond the last complete record: records cut off the end are refused, never repaired.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import BaseModel, Field, ValidationError

from govdeploy.errors import AuditError, GovdeployError
from govdeploy.trust.anchors import ANCHOR_PREFIX as ANCHOR_PREFIX
from govdeploy.trust.anchors import Anchor, AnchorStore, StoredAnchors, check_stored
from govdeploy.trust.anchors import S3Anchors as S3Anchors
from govdeploy.trust.audit_bounds import SENSITIVE_BYTES, bounded, cap_text
from govdeploy.trust.audit_bounds import canonical as canonical
from govdeploy.trust.audit_file import Tail, TornLine, read_lines, read_tail

GENESIS = "0" * 64
REPAIRED = "audit.repaired"


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


def _head(path: Path, tail: Tail) -> AuditRecord | None:
    if tail.last is None:
        return None
    try:
        return AuditRecord.model_validate_json(tail.last)
    except ValidationError as exc:
        raise AuditError(
            f"the last complete line of {path} (byte offset {tail.start}) is not an audit record: "
            "the log was edited or corrupted, nothing is appended after it; run 'govdeploy audit verify'"
        ) from exc


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
        payload: Mapping[str, Any] | None = None,
        *,
        model: str | None = None,
        version: str | None = None,
        policy_digest: str | None = None,
        sensitive: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        """Write one record and anchor the new head; raise AuditError if either fails.

        Fields are capped (``bounded``, ``cap_text``); a torn last line is repaired first."""
        try:
            entry = self._entry(action, actor, payload or {}, sensitive, model, version, policy_digest)
            with self._locked():
                tail = read_tail(self.path)
                last = self._repair(tail, tail.torn) if tail.torn else _head(self.path, tail)
                record = self._chain(entry, last)
                self._commit(record)
                self._anchor(record)
            return record
        except GovdeployError:
            raise
        except Exception as exc:  # disk full, permissions, a value the sealer refuses: never a bare crash
            raise AuditError(
                f"audit record {cap_text(action, 80)!r} could not be written to {self.path} "
                f"({type(exc).__name__}: {exc}); check the disk and the log's permissions, then run "
                "'govdeploy audit verify'"
            ) from exc

    def _entry(
        self,
        action: str,
        actor: str,
        payload: Mapping[str, Any],
        sensitive: Mapping[str, Any] | None,
        *refs: str | None,
    ) -> dict[str, Any]:
        """Everything of a record but its place in the chain, capped."""
        record_id = str(uuid.uuid4())
        body = bounded(payload)
        if sensitive:
            if self.sealer is None:
                raise AuditError(f"{action}: personal data given but no sealer (master key) configured")
            body["sealed"] = self.sealer(canonical(bounded(sensitive, SENSITIVE_BYTES)), record_id)
        model, version, policy_digest = (None if ref is None else cap_text(ref) for ref in refs)
        return {
            "id": record_id,
            "action": cap_text(action),
            "actor": cap_text(actor),
            "model": model,
            "version": version,
            "policy_digest": policy_digest,
            "payload": body,
        }

    def _chain(self, entry: dict[str, Any], last: AuditRecord | None) -> AuditRecord:
        record = AuditRecord(
            seq=last.seq + 1 if last else 1,
            time=datetime.now(UTC).isoformat(timespec="microseconds"),
            prev=last.hash if last else GENESIS,
            **entry,
        )
        record.hash = record_hash(record)
        record.signature = base64.b64encode(self.key.sign(bytes.fromhex(record.hash))).decode()
        return record

    def _commit(self, record: AuditRecord) -> None:
        with self.path.open("ab") as out:
            out.write(record.model_dump_json().encode() + b"\n")
            out.flush()
            os.fsync(out.fileno())

    def _anchor(self, record: AuditRecord) -> None:
        try:
            self.anchors.put(Anchor(seq=record.seq, hash=record.hash, time=record.time))
        except Exception as exc:
            raise AuditError(
                f"audit record {record.seq} ({record.action}) is written to {self.path} but its anchor "
                f"could not be stored ({exc}); the next append anchors it, check the bucket"
            ) from exc

    def _repair(self, tail: Tail, torn: TornLine) -> AuditRecord:
        """Quarantine the torn last line, cut it off and record ``audit.repaired``; the new head."""
        last = _head(self.path, tail)
        seq = last.seq if last else 0
        beyond = max((a.seq for a in self.anchors.all()), default=0)
        if beyond > seq:
            raise AuditError(
                f"{self.path} ends with an unterminated line at byte offset {torn.offset}, but the bucket "
                f"anchors records up to {beyond} and the last complete record is {seq}: records were cut "
                "off the log, this is not a torn append; restore the log and run 'govdeploy audit verify'"
            )
        quarantine = self.path.with_name(f"{self.path.name}.torn-{torn.offset}-{torn.sha256[:12]}")
        with self.path.open("r+b") as log, quarantine.open("wb") as out:
            log.seek(torn.offset)
            shutil.copyfileobj(log, out)
            out.flush()
            os.fsync(out.fileno())
            log.truncate(torn.offset)
            os.fsync(log.fileno())
        found = {"torn_offset": torn.offset, "torn_bytes": torn.length, "torn_sha256": torn.sha256}
        found["quarantined_to"] = quarantine.name
        record = self._chain(self._entry(REPAIRED, "govdeploy", found, None, None, None, None), last)
        self._commit(record)
        with suppress(AuditError):  # the anchor of the record that follows covers this one
            self._anchor(record)
        return record


def read_records(path: Path) -> list[AuditRecord]:
    """Every committed record of the log, in file order (for display; use ``verify`` to check
    them). A torn last line is not a record yet; any other line that is not one is an error."""
    found = []
    for number, (offset, line) in enumerate(read_lines(path)[0], start=1):
        try:
            found.append(AuditRecord.model_validate_json(line))
        except ValidationError as exc:
            raise AuditError(
                f"line {number} of {path} (byte offset {offset}) is not an audit record (edited or "
                "corrupted); run 'govdeploy audit verify'"
            ) from exc
    return found


class VerifyReport(BaseModel):
    """Problems fail the verification; warnings say what a passing one does not prove."""

    records: int
    anchors: int
    problems: list[str]
    warnings: list[str] = Field(default_factory=list)
    torn: TornLine | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(path: Path, public_key: ed25519.Ed25519PublicKey, anchors: list[Anchor]) -> VerifyReport:
    """Check chain, hashes, signatures and anchors' content; every problem found is listed.

    An unterminated last line is torn (an append that did not finish): it is no record, so it is a
    warning, with its byte offset; records it cut off show as anchors without a record."""
    problems: list[str] = []
    lines, torn = read_lines(path)
    records: list[AuditRecord] = []
    for number, (_, line) in enumerate(lines, start=1):
        try:
            records.append(AuditRecord.model_validate_json(line))
        except ValidationError:
            problems.append(f"line {number} is not an audit record (edited or corrupted)")
    prev = GENESIS
    for position, record in enumerate(records, start=1):
        problems += _check_record(record, position, prev, public_key)
        prev = record.hash
    problems += _check_anchors(records, anchors)
    warnings = _torn_warnings(torn, len(lines)) + _repairs(records) + _gaps(records, anchors)
    return VerifyReport(
        records=len(records), anchors=len(anchors), problems=problems, warnings=warnings, torn=torn
    )


def _torn_warnings(torn: TornLine | None, complete: int) -> list[str]:
    if torn is None:
        return []
    return [
        f"line {complete + 1} (byte offset {torn.offset}, {torn.length} bytes, sha256 {torn.sha256}) is "
        "torn: it has no newline, an append did not finish; it is not a record, and the next append "
        f"quarantines it and records {REPAIRED}"
    ]


def _repairs(records: list[AuditRecord]) -> list[str]:
    return [
        f"record {r.seq} ({REPAIRED}): a torn line of {r.payload.get('torn_bytes')} bytes at byte offset "
        f"{r.payload.get('torn_offset')} was moved to {r.payload.get('quarantined_to')}"
        for r in records
        if r.action == REPAIRED
    ]


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
