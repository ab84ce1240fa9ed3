from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from govdeploy.errors import AuditError
from govdeploy.trust.anchors import StoredAnchor, StoredAnchors, anchor_key
from govdeploy.trust.audit import Anchor, AuditLog, AuditRecord, record_hash
from govdeploy.trust.audit_verify import read_records, verify, verify_stored
from tests.govdeploy.trust.anchor_stores import MemoryAnchors


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
    assert "record 3 does not chain to the record before it" in check(log, key)
    rewrite(log, [lines[0], lines[2], lines[1], *lines[3:]])
    assert "record 2 follows record 3: a record was inserted or moved (sequence numbers only grow)" in check(
        log, key
    )
    rewrite(log, [*lines[:2], lines[1], *lines[2:]])
    assert any("a record was inserted or moved" in p for p in check(log, key))


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


def test_an_unreachable_bucket_writes_nothing_and_says_so(
    tmp_path: Path, key: ed25519.Ed25519PrivateKey
) -> None:
    """The claim in the bucket is the commit point: without it no line is written."""
    anchors = MemoryAnchors()
    audit = AuditLog(tmp_path / "a.jsonl", key, anchors)
    audit.append("x", "me")
    anchors.fail = True
    with pytest.raises(
        AuditError, match=r"'y': the records claimed in the bucket after record 1 could not be read"
    ):
        audit.append("y", "me")
    assert [r.action for r in read_records(audit.path)] == ["x"]
    anchors.fail = False
    assert audit.append("z", "me").seq == 2
    report = verify(audit.path, key.public_key(), anchors.all())
    assert report.ok and report.warnings == []


def test_two_writers_on_two_machines_share_one_chain(tmp_path: Path, key: ed25519.Ed25519PrivateKey) -> None:
    """Each has its own log file; the bucket orders them: a writer copies in what the other claimed,
    and its own records continue that chain."""
    anchors = MemoryAnchors()
    here, there = AuditLog(tmp_path / "a.jsonl", key, anchors), AuditLog(tmp_path / "b.jsonl", key, anchors)
    here.append("one", "a")
    there.append("two", "b")
    here.append("three", "a")
    assert there.sync() is not None
    for log in (here, there):
        assert [(r.seq, r.action) for r in read_records(log.path)] == [(1, "one"), (2, "two"), (3, "three")]
        assert verify(log.path, key.public_key(), anchors.all()).ok
    assert here.path.read_bytes() == there.path.read_bytes()


def test_a_lost_claim_is_retried_after_the_winner(tmp_path: Path, key: ed25519.Ed25519PrivateKey) -> None:
    anchors = MemoryAnchors()
    audit = AuditLog(tmp_path / "a.jsonl", key, anchors)
    audit.append("first", "a")
    rival = AuditLog(tmp_path / "b.jsonl", key, anchors)
    original = anchors.claim
    raced: list[int] = []

    def claim(anchor: Any) -> bool:
        if not raced:  # another machine claims this number just before us
            raced.append(anchor.seq)
            rival.append("rival", "b")
        return original(anchor)

    anchors.claim = claim  # type: ignore[method-assign]
    record = audit.append("mine", "a")
    assert (raced, record.seq) == ([2], 3)
    assert [r.action for r in read_records(audit.path)] == ["first", "rival", "mine"]
    assert verify(audit.path, key.public_key(), anchors.all()).ok


def test_an_object_that_is_no_record_burns_its_number(tmp_path: Path, key: ed25519.Ed25519PrivateKey) -> None:
    """Someone with bucket access but without the audit key takes the next key: the chain goes on
    after it (a halted trail would halt every release), and verification names the skipped number."""
    anchors = MemoryAnchors()
    audit = AuditLog(tmp_path / "a.jsonl", key, anchors)
    first = audit.append("first", "a")
    forger = ed25519.Ed25519PrivateKey.generate()
    forged = AuditLog(tmp_path / "forged.jsonl", forger, MemoryAnchors()).append("forged", "mallory")
    forged.prev = first.hash
    anchors.claim(Anchor(seq=2, hash=forged.hash, time=forged.time, record=forged.model_dump_json()))
    record = audit.append("second", "a")
    assert (record.seq, record.prev) == (3, first.hash)
    report = verify(audit.path, key.public_key(), [a for a in anchors.all() if a.seq != 2])
    assert report.ok and any("sequence numbers 2 are skipped" in w for w in report.warnings)


def test_a_signed_record_that_does_not_continue_the_log_stops_appends(
    tmp_path: Path, key: ed25519.Ed25519PrivateKey
) -> None:
    anchors = MemoryAnchors()
    audit = AuditLog(tmp_path / "a.jsonl", key, anchors)
    audit.append("first", "a")
    other = AuditLog(tmp_path / "b.jsonl", key, MemoryAnchors())  # another chain under the same key
    other.append("other", "b")
    anchors.by_seq[2] = other.anchors.all()[0].model_copy(update={"seq": 2})
    forked = other.append("forked", "b")  # record 2 of the other chain: signed, chained to its own 1
    anchors.by_seq[2] = Anchor(seq=2, hash=forked.hash, time=forked.time, record=forked.model_dump_json())
    with pytest.raises(
        AuditError, match="record 2 claimed in the bucket is signed by the audit key but does not chain"
    ):
        audit.append("second", "a")
    assert [r.action for r in read_records(audit.path)] == ["first"]


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
