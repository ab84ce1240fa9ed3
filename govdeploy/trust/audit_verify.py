"""Reading and verifying the audit trail: chain, hashes, signatures, anchors, torn and skipped lines.

``verify`` lists every problem it finds (a failed verification) and what a passing one does not
prove (warnings): a torn last line, repairs, records covered only through the chain, sequence
numbers skipped because their anchor keys hold something that is not a record.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import BaseModel, Field, ValidationError

from govdeploy.errors import AuditError
from govdeploy.trust.anchors import Anchor, StoredAnchors, check_stored
from govdeploy.trust.audit import GENESIS, REPAIRED, AuditRecord, record_hash
from govdeploy.trust.audit_file import TornLine, read_lines
from govdeploy.trust.audit_keys import AuditKeys


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


def verify(
    path: Path, public_key: ed25519.Ed25519PublicKey | AuditKeys, anchors: list[Anchor]
) -> VerifyReport:
    """Check chain, hashes, signatures and anchors' content; every problem found is listed. Each
    record is checked under the audit key (of ``public_key``, one key or the dated ring) that could
    sign at its time: across a rotation, old records under the old key, new ones under the new.

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
    prev, seq, skipped = GENESIS, 0, list[int]()
    keys = AuditKeys.of(public_key)
    for record in records:
        problems += _check_record(record, seq, prev, keys)
        skipped += range(seq + 1, record.seq)
        prev, seq = record.hash, max(seq, record.seq)
    problems += _check_anchors(records, anchors)
    warnings = _torn_warnings(torn, len(lines)) + _repairs(records) + _gaps(records, anchors)
    warnings += _burned(skipped)
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
    public_key: ed25519.Ed25519PublicKey | AuditKeys,
    stored: StoredAnchors,
    retention_days: int,
    now: datetime | None = None,
) -> VerifyReport:
    """``verify`` against the anchors as stored, and check how the bucket keeps them (lock, times,
    versions: see ``govdeploy.trust.anchors``)."""
    report = verify(path, public_key, stored.anchors())
    report.problems += check_stored(stored, retention_days, now or datetime.now(UTC))
    return report


def _check_record(record: AuditRecord, before: int, prev: str, keys: AuditKeys) -> list[str]:
    problems = []
    if record.seq <= before:
        problems.append(
            f"record {record.seq} follows record {before}: a record was inserted or moved "
            "(sequence numbers only grow)"
        )
    if record.prev != prev:
        problems.append(f"record {record.seq} does not chain to the record before it")
    if record_hash(record) != record.hash:
        problems.append(
            f"record {record.seq} ({record.action}) was edited: its hash does not match its content"
        )
    signature = keys.problem(record)
    return problems + ([signature] if signature else [])


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


def _burned(skipped: list[int]) -> list[str]:
    """Numbers the chain skips: their keys in the bucket hold something that is no record of it
    (the next record chains over them, so nothing was removed there; the bucket check names them)."""
    if not skipped:
        return []
    shown = ", ".join(map(str, skipped[:10])) + (f" and {len(skipped) - 10} more" if skipped[10:] else "")
    return [
        f"sequence numbers {shown} are skipped: their anchor keys were taken by objects that are not "
        "records of this trail, and the next record chains over them"
    ]


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
