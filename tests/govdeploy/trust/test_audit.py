from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from govdeploy.errors import AuditError
from govdeploy.trust.anchors import StoredAnchor, StoredAnchors, anchor_key
from govdeploy.trust.audit import (
    Anchor,
    AuditLog,
    AuditRecord,
    read_records,
    record_hash,
    verify,
    verify_stored,
)


class MemoryAnchors:
    def __init__(self) -> None:
        self.anchors: list[Anchor] = []
        self.fail = False

    def put(self, anchor: Anchor) -> None:
        if self.fail:
            raise ConnectionError("bucket unreachable")
        self.anchors.append(anchor)

    def all(self) -> list[Anchor]:
        return sorted(self.anchors, key=lambda a: a.seq)


@pytest.fixture
def key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
def log(tmp_path: Path, key: ed25519.Ed25519PrivateKey) -> AuditLog:
    audit = AuditLog(tmp_path / "audit.jsonl", key, MemoryAnchors())
    for n in range(5):
        audit.append(
            "gate.decided", "trainer", {"n": n}, model="credit-risk", version=str(n), policy_digest="d" * 64
        )
    return audit


def check(log: AuditLog, key: ed25519.Ed25519PrivateKey) -> list[str]:
    return verify(log.path, key.public_key(), log.anchors.all()).problems


def rewrite(log: AuditLog, lines: list[str]) -> None:
    log.path.write_text("".join(line + "\n" for line in lines))


def test_an_untouched_log_verifies(log: AuditLog, key: ed25519.Ed25519PrivateKey) -> None:
    report = verify(log.path, key.public_key(), log.anchors.all())
    assert report.ok and report.records == 5 and report.anchors == 5
    records = read_records(log.path)
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert records[1].prev == records[0].hash


def test_an_edited_record_is_caught(log: AuditLog, key: ed25519.Ed25519PrivateKey) -> None:
    lines = log.path.read_text().splitlines()
    lines[2] = lines[2].replace('"actor":"trainer"', '"actor":"someone-else"')
    rewrite(log, lines)
    assert "record 3 (gate.decided) was edited: its hash does not match its content" in check(log, key)


def test_deleted_reordered_and_inserted_records_are_caught(
    log: AuditLog, key: ed25519.Ed25519PrivateKey
) -> None:
    lines = log.path.read_text().splitlines()
    rewrite(log, lines[:1] + lines[2:])
    assert any("a record was deleted, inserted or moved" in p for p in check(log, key))
    rewrite(log, [lines[0], lines[2], lines[1], *lines[3:]])
    assert any("does not chain" in p for p in check(log, key))
    rewrite(log, [*lines[:2], lines[1], *lines[2:]])
    assert any("a record was deleted, inserted or moved" in p for p in check(log, key))


def test_a_truncated_log_is_caught(log: AuditLog, key: ed25519.Ed25519PrivateKey) -> None:
    rewrite(log, log.path.read_text().splitlines()[:3])
    assert "anchor 4 has no record: the log was truncated or records were removed (it ends at 3)" in check(
        log, key
    )


def test_a_rewritten_and_resigned_chain_is_caught_by_the_anchors(
    log: AuditLog, key: ed25519.Ed25519PrivateKey
) -> None:
    records = read_records(log.path)
    records[1].actor = "forger"
    prev = records[0].hash
    for record in records[1:]:  # the writer holds the audit key and re-signs everything
        record.prev = prev
        record.hash = record_hash(record)
        record.signature = __import__("base64").b64encode(key.sign(bytes.fromhex(record.hash))).decode()
        prev = record.hash
    rewrite(log, [r.model_dump_json() for r in records])
    problems = check(log, key)
    assert problems == [f"record {n} differs from its anchor: the chain was rewritten" for n in range(2, 6)]


def test_a_wrong_signature_is_caught(log: AuditLog, key: ed25519.Ed25519PrivateKey) -> None:
    other = ed25519.Ed25519PrivateKey.generate()
    assert (
        "record 1 has no valid signature of the audit key"
        in verify(log.path, other.public_key(), log.anchors.all()).problems
    )


def test_garbage_lines_are_caught(log: AuditLog, key: ed25519.Ed25519PrivateKey) -> None:
    with log.path.open("a") as out:
        out.write("not json\n")
    assert "line 6 is not an audit record (edited or corrupted)" in check(log, key)


def test_a_failed_anchor_is_an_error_and_is_reported(tmp_path: Path, key: ed25519.Ed25519PrivateKey) -> None:
    anchors = MemoryAnchors()
    audit = AuditLog(tmp_path / "a.jsonl", key, anchors)
    audit.append("x", "me")
    anchors.fail = True
    with pytest.raises(AuditError, match=r"record 2 .* its anchor could not be stored"):
        audit.append("y", "me")
    assert (
        "records 2..2 are not anchored in the bucket"
        in verify(audit.path, key.public_key(), anchors.all()).problems
    )
    anchors.fail = False
    audit.append("z", "me")
    report = verify(audit.path, key.public_key(), anchors.all())
    assert report.ok  # record 3's anchor covers record 2 through the chain, and that is said
    assert report.warnings == [
        "records 2 have no anchor of their own (the anchor write failed, or the anchor was deleted); "
        "later anchors cover them through the hash chain"
    ]


def test_an_anchor_with_another_time_than_its_record_is_caught(
    log: AuditLog, key: ed25519.Ed25519PrivateKey
) -> None:
    anchors = log.anchors.all()
    anchors[1] = anchors[1].model_copy(update={"time": "2020-01-01T00:00:00+00:00"})
    problems = verify(log.path, key.public_key(), anchors).problems
    assert problems == [
        f"anchor 2 carries the time 2020-01-01T00:00:00+00:00, its record {read_records(log.path)[1].time}: "
        "the anchor was not written by that record's append"
    ]


def test_verify_stored_checks_how_the_bucket_keeps_the_anchors(
    log: AuditLog, key: ed25519.Ed25519PrivateKey
) -> None:
    def as_stored(anchor: Anchor, mode: str) -> StoredAnchor:
        at = datetime.fromisoformat(anchor.time)
        return StoredAnchor(
            key=anchor_key(anchor.seq),
            version_id="v1",
            last_modified=at,
            lock_mode=mode,
            retain_until=at + timedelta(days=10),
            anchor=anchor,
        )

    anchors = log.anchors.all()
    faithful = StoredAnchors(versions=[as_stored(a, "COMPLIANCE") for a in anchors])
    assert verify_stored(log.path, key.public_key(), faithful, retention_days=10).ok
    downgraded = StoredAnchors(
        versions=[as_stored(a, "GOVERNANCE" if a.seq == 5 else "COMPLIANCE") for a in anchors]
    )
    report = verify_stored(log.path, key.public_key(), downgraded, retention_days=10)
    assert report.records == 5 and report.anchors == 5
    assert len(report.problems) == 1 and "GOVERNANCE mode, not COMPLIANCE" in report.problems[0]
    short = verify_stored(log.path, key.public_key(), faithful, retention_days=11).problems
    assert len(short) == 5 and all(p.endswith("its retention was shortened") for p in short)


def test_concurrent_appends_keep_one_chain(tmp_path: Path, key: ed25519.Ed25519PrivateKey) -> None:
    anchors = MemoryAnchors()
    writers = [AuditLog(tmp_path / "c.jsonl", key, anchors) for _ in range(4)]

    def work(audit: AuditLog) -> None:
        for n in range(25):
            audit.append("event", "worker", {"n": n})

    threads = [threading.Thread(target=work, args=(w,)) for w in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = verify(tmp_path / "c.jsonl", key.public_key(), anchors.all())
    assert report.ok, report.problems
    assert report.records == 100


def test_records_are_canonical_json(log: AuditLog) -> None:
    first = json.loads(log.path.read_text().splitlines()[0])
    assert AuditRecord.model_validate(first).hash == first["hash"]
