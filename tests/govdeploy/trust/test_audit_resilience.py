"""Appending always works: capped fields, lines of any length, torn last lines, concurrent writers."""

from __future__ import annotations

import base64
import hashlib
import multiprocessing
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from govdeploy.errors import AuditError
from govdeploy.trust.audit import REPAIRED, Anchor, AuditLog, AuditRecord, record_hash
from govdeploy.trust.audit_bounds import CUT, PAYLOAD_BYTES, bounded, canonical, cap_text
from govdeploy.trust.audit_verify import read_records, verify
from tests.govdeploy.trust.anchor_stores import FileAnchors, MemoryAnchors

MEGABYTE = 1_000_000


@pytest.fixture
def key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
def log(tmp_path: Path, key: ed25519.Ed25519PrivateKey) -> AuditLog:
    audit = AuditLog(tmp_path / "audit.jsonl", key, MemoryAnchors())
    for n in range(3):
        audit.append("gate.decided", "trainer", {"n": n}, model="credit-risk", version=str(n))
    return audit


def problems(log: AuditLog, key: ed25519.Ed25519PrivateKey) -> list[str]:
    return verify(log.path, key.public_key(), log.anchors.all()).problems


def signed(key: ed25519.Ed25519PrivateKey, record: AuditRecord) -> AuditRecord:
    record.hash = record_hash(record)
    record.signature = base64.b64encode(key.sign(bytes.fromhex(record.hash))).decode()
    return record


def marker(value: str) -> str:
    return f"sha256 {hashlib.sha256(value.encode()).hexdigest()}]"


# --- capped fields ---------------------------------------------------------------------------


def test_a_one_megabyte_field_is_capped_and_later_appends_verify(
    log: AuditLog, key: ed25519.Ed25519PrivateKey
) -> None:
    approver = "a" * MEGABYTE
    record = log.append("approval.received", "x" * MEGABYTE, {"approver": approver, "n": 1})
    assert record.payload["n"] == 1
    assert record.payload["approver"] == (
        f"{'a' * 4096}…[cut {MEGABYTE - 4096} of {MEGABYTE} characters; {marker(approver)}"
    )
    assert record.actor.startswith("x" * 256 + "…[cut 999744 of 1000000 characters; sha256 ")
    assert len(log.path.read_bytes().splitlines()[-1]) < 64 * 1024
    for n in range(3):
        log.append("after", "me", {"n": n})
    assert problems(log, key) == []
    assert [r.seq for r in read_records(log.path)] == [1, 2, 3, 4, 5, 6, 7]


def test_small_payloads_are_kept_whole(log: AuditLog) -> None:
    payload = {"features": [{"name": f"f{i}", "psi": i / 7} for i in range(300)], "note": "n" * 3000}
    assert bounded(payload) == payload
    assert log.append("drift.decided", "nightly", payload).payload == payload


def test_a_wide_payload_is_summarised_with_the_digest_of_what_was_cut() -> None:
    rows = [f"row-{i}-" + "r" * 200 for i in range(1000)]
    capped = bounded({"rows": rows})
    whole = hashlib.sha256(canonical(rows)).hexdigest()
    assert capped["rows"][:-1] == rows[: len(capped["rows"]) - 1]
    assert capped["rows"][-1].startswith(f"[cut {1001 - len(capped['rows'])} of a list of 1000 items; ")
    assert capped["rows"][-1].endswith(f"sha256 {whole}]")
    assert len(canonical(capped)) <= PAYLOAD_BYTES


def test_a_deep_payload_is_summarised_below_the_depth_limit() -> None:
    deep: dict[str, Any] = {"leaf": "x" * 40_000}
    for level in range(12):
        deep = {f"level{level}": deep, "pad": "p" * 3000}
    capped = bounded(deep)
    assert len(canonical(capped)) <= PAYLOAD_BYTES
    for level in range(11, 3, -1):  # eight levels are kept, each with its padding
        assert capped["pad"] == "p" * 3000
        capped, deep = capped[f"level{level}"], deep[f"level{level}"]
    whole = hashlib.sha256(canonical(deep)).hexdigest()
    assert capped == f"[object beyond the depth limit of 2 items; sha256 {whole}]"


def test_long_keys_are_capped_too() -> None:
    long_key = "k" * 50_000
    (capped_key,) = bounded({long_key: 1})
    assert capped_key.startswith("k" * 4096 + "…[cut") and capped_key.endswith(marker(long_key))


def test_an_unboundable_payload_is_replaced_by_its_size_and_digest() -> None:
    assert bounded({"x": "y" * 100}, budget=40) == {CUT: bounded({"x": "y" * 100}, budget=40)[CUT]}
    assert bounded({"x": "y" * 100}, budget=40)[CUT].startswith("[108 bytes over the 40-byte limit; sha256 ")


class Broken:
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_values_json_cannot_hold_are_recorded_and_still_verify(
    log: AuditLog, key: ed25519.Ed25519PrivateKey
) -> None:
    cycle: list[Any] = [1]
    cycle.append(cycle)
    payload = {
        "nan": float("nan"),
        "inf": float("-inf"),
        "when": datetime(2026, 1, 2, tzinfo=UTC),
        "huge": 2**200,
        "cycle": cycle,
        "broken": Broken(),
        "lone": "\ud800",
        "ids": {3: "three"},
        "separators": "a\u2028b\x85c\rd\x1e",
    }
    record = log.append("odd.values", "me", payload)
    assert record.payload["nan"] == "nan" and record.payload["inf"] == "-inf"
    assert record.payload["when"] == "2026-01-02 00:00:00+00:00"
    assert record.payload["huge"] == hex(2**200)
    assert record.payload["cycle"] == [1, "[list not recorded: cycle limit]"]
    assert record.payload["broken"] == "<Broken>"
    assert record.payload["lone"] == "\\ud800"
    assert record.payload["ids"] == {"3": "three"}
    log.append("next", "me")
    assert problems(log, key) == []
    assert read_records(log.path)[3].payload["separators"] == "a\u2028b\x85c\rd\x1e"


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=3000),
    lambda inner: st.lists(inner, max_size=40) | st.dictionaries(st.text(max_size=300), inner, max_size=40),
    max_leaves=200,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.dictionaries(st.text(max_size=50), JSON, max_size=8), actor=st.text(max_size=600))
def test_any_payload_appends_within_the_budget_and_verifies(payload: dict[str, Any], actor: str) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory() as tmp:
        audit = AuditLog(Path(tmp) / "audit.jsonl", key, MemoryAnchors())
        record = audit.append("any", actor, payload, model=actor)
        audit.append("after", "me")
        assert len(canonical(record.payload)) <= PAYLOAD_BYTES
        report = verify(audit.path, key.public_key(), audit.anchors.all())
        assert report.ok, report.problems
        assert read_records(audit.path)[0].payload == record.payload


@given(text=st.text(max_size=500), limit=st.integers(min_value=1, max_value=400))
def test_cap_text_keeps_short_text_and_proves_long_text(text: str, limit: int) -> None:
    capped = cap_text(text, limit)
    if len(text) <= limit:
        assert capped == text
    else:
        assert capped.startswith(text[:limit] + f"…[cut {len(text) - limit} of {len(text)} characters")
        assert capped.endswith(marker(text))


# --- lines of any length ---------------------------------------------------------------------


def test_a_trail_with_an_existing_oversize_last_line_still_appends(
    log: AuditLog, key: ed25519.Ed25519PrivateKey
) -> None:
    (*_, last) = read_records(log.path)
    huge = AuditRecord(
        seq=4,
        id="written-before-caps",
        time=datetime.now(UTC).isoformat(timespec="microseconds"),
        actor="gateway",
        action="serving.killed",
        payload={"reason": "r" * (3 * MEGABYTE)},
        prev=last.hash,
    )
    signed(key, huge)
    with log.path.open("a") as out:
        out.write(huge.model_dump_json() + "\n")
    assert log.anchors.claim(Anchor(seq=4, hash=huge.hash, time=huge.time, record=huge.model_dump_json()))
    assert log.append("after", "me").seq == 5
    assert log.append("after", "me").prev == read_records(log.path)[4].hash
    assert problems(log, key) == []


# --- torn last lines -------------------------------------------------------------------------


def torn_append(log: AuditLog, fragment: bytes) -> int:
    """Bytes an append left without its newline; returns where they start."""
    offset = log.path.stat().st_size
    with log.path.open("ab") as out:
        out.write(fragment)
    return offset


def test_a_torn_last_line_is_reported_and_the_next_append_repairs_it(
    log: AuditLog, key: ed25519.Ed25519PrivateKey
) -> None:
    fragment = b'{"seq":4,"id":"0b3c","time":"2026-'
    offset = torn_append(log, fragment)
    report = verify(log.path, key.public_key(), log.anchors.all())
    assert report.ok and report.records == 3
    assert report.torn is not None and report.torn.offset == offset and report.torn.length == len(fragment)
    digest = hashlib.sha256(fragment).hexdigest()
    assert report.warnings == [
        f"line 4 (byte offset {offset}, {len(fragment)} bytes, sha256 {digest}) is torn: it has no newline, "
        f"an append did not finish; it is not a record, and the next append quarantines it and records "
        f"{REPAIRED}"
    ]

    record = log.append("rollout.published", "gateway", {"n": 4})
    assert record.seq == 5
    repaired = read_records(log.path)[3]
    quarantine = log.path.with_name(f"audit.jsonl.torn-{offset}-{digest[:12]}")
    assert (repaired.seq, repaired.action, repaired.actor) == (4, REPAIRED, "govdeploy")
    assert repaired.payload == {
        "torn_offset": offset,
        "torn_bytes": len(fragment),
        "torn_sha256": digest,
        "quarantined_to": quarantine.name,
    }
    assert quarantine.read_bytes() == fragment
    after = verify(log.path, key.public_key(), log.anchors.all())
    assert after.ok and after.records == 5 and after.torn is None
    assert after.warnings == [
        f"record 4 ({REPAIRED}): a torn line of {len(fragment)} bytes at byte offset {offset} was moved to "
        f"{quarantine.name}"
    ]


def test_a_log_that_is_only_a_torn_line_restarts_from_genesis(
    tmp_path: Path, key: ed25519.Ed25519PrivateKey
) -> None:
    audit = AuditLog(tmp_path / "audit.jsonl", key, MemoryAnchors())
    audit.path.write_bytes(b'{"seq":1,"id":')
    assert verify(audit.path, key.public_key(), []).torn is not None
    assert audit.append("first", "me").seq == 2
    assert verify(audit.path, key.public_key(), audit.anchors.all()).ok


def test_records_cut_off_the_end_are_restored_from_the_bucket(
    log: AuditLog, key: ed25519.Ed25519PrivateKey
) -> None:
    data = log.path.read_bytes()
    cut = data[: len(data) - 40]  # the end of record 3 and its newline are gone
    log.path.write_bytes(cut)
    report = verify(log.path, key.public_key(), log.anchors.all())
    assert "anchor 3 has no record: the log was truncated or records were removed (it ends at 2)" in (
        report.problems
    )
    assert report.torn is not None
    assert log.append("after", "me").seq == 5  # 3 copied back from its claim, 4 the repair
    assert log.path.read_bytes().startswith(data)
    assert [r.action for r in read_records(log.path)][3:] == [REPAIRED, "after"]
    assert problems(log, key) == []


def test_a_torn_line_in_the_middle_is_tampering_not_a_repair(
    log: AuditLog, key: ed25519.Ed25519PrivateKey
) -> None:
    lines = log.path.read_bytes().split(b"\n")
    lines[1] = lines[1][:50]  # record 2 cut short, yet followed by a newline
    log.path.write_bytes(b"\n".join(lines))
    report = verify(log.path, key.public_key(), log.anchors.all())
    assert report.torn is None
    assert "line 2 is not an audit record (edited or corrupted)" in report.problems
    log.append("after", "me")
    assert "line 2 is not an audit record (edited or corrupted)" in problems(log, key)
    assert not list(log.path.parent.glob("*.torn-*"))


def test_a_terminated_garbage_last_line_stops_appends(log: AuditLog) -> None:
    offset = torn_append(log, b"not a record\n")
    with pytest.raises(
        AuditError, match=rf"last complete line of .* \(byte offset {offset}\) is not an audit"
    ):
        log.append("after", "me")


# --- errors ----------------------------------------------------------------------------------


def test_a_failing_sealer_is_an_audit_error_naming_the_cause(
    tmp_path: Path, key: ed25519.Ed25519PrivateKey
) -> None:
    def sealer(data: bytes, record_id: str) -> dict[str, Any]:
        raise ValueError("no room in the envelope")

    audit = AuditLog(tmp_path / "audit.jsonl", key, MemoryAnchors(), sealer=sealer)
    with pytest.raises(AuditError, match=r"'x' could not be written .*ValueError: no room in the envelope"):
        audit.append("x", "me", sensitive={"email": "a@b.c"})
    assert not audit.path.exists()


def test_an_unwritable_log_is_an_audit_error(tmp_path: Path, key: ed25519.Ed25519PrivateKey) -> None:
    (tmp_path / "audit.jsonl").mkdir()
    audit = AuditLog(tmp_path / "audit.jsonl", key, MemoryAnchors())
    with pytest.raises(AuditError, match=r"could not be written to .*audit.jsonl \(IsADirectoryError"):
        audit.append("x", "me")


# --- concurrent writers ----------------------------------------------------------------------


def _writer(path: str, anchors: str, pem: bytes, name: str, count: int) -> None:
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    audit = AuditLog(Path(path), key, FileAnchors(Path(anchors)))
    for n in range(count):
        audit.append("event", name, {"n": n, "pad": name * 2000})


def test_appends_from_several_processes_keep_one_chain(
    tmp_path: Path, key: ed25519.Ed25519PrivateKey
) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path, anchors = tmp_path / "audit.jsonl", tmp_path / "anchors"
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_writer, args=(str(path), str(anchors), pem, name, 40))
        for name in ("flows", "gateway", "cli")
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    report = verify(path, key.public_key(), FileAnchors(anchors).all())
    assert report.ok, report.problems
    assert report.records == report.anchors == 120
    assert {r.actor for r in read_records(path)} == {"flows", "gateway", "cli"}
