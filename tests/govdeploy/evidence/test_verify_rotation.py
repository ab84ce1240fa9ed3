"""Evidence packs of a deployment whose audit key and an approver's key rotated: each audit record,
the manifest and each approval statement verify offline under the key that could sign at its time,
from the dated keys the pack carries (``keys/trusted.json``); what a retired key signed after its
retirement is named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from govdeploy.config.trust import KeyDates
from govdeploy.evidence.verify import verify_pack
from govdeploy.trust.approvals import make_statement, read_approval_token, sign_statement
from govdeploy.trust.key_dates import DatedKey
from govdeploy.trust.validity import iso
from tests.govdeploy.evidence.packs import Rotated, build_pack
from tests.govdeploy.trust.test_approvals import REQUEST as APPROVAL_REQUEST

# the audit key rotated at the time of the third audit record (records are one second apart)
T = datetime.fromisoformat("2026-11-30T00:00:03+00:00")
REQUEST = APPROVAL_REQUEST.model_copy(update={"model": "m", "version": "1"})


def key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def dated(private: ed25519.Ed25519PrivateKey, **dates: datetime) -> dict[str, Any]:
    return DatedKey(private.public_key(), "test", KeyDates(**dates)).as_json()


def statement(signer: ed25519.Ed25519PrivateKey, issued: datetime) -> dict[str, Any]:
    made = make_statement(REQUEST, "alice", "approve", "ok", 30)
    made = made.model_copy(
        update={"issued_at": iso(issued), "expires_at": iso(issued + timedelta(minutes=30))}
    )
    return read_approval_token(sign_statement(made, signer)).model_dump()


def rotated_pack(tmp_path: Path, *, forged_record: bool = False, late_statement: bool = False) -> Path:
    old_audit, new_audit, alice_old, alice_new = key(), key(), key(), key()
    alice_rotated = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    approvals = [
        statement(alice_old, alice_rotated - timedelta(minutes=5)),  # before alice's rotation
        statement(alice_new, alice_rotated + timedelta(minutes=5)),
    ]
    if late_statement:
        approvals.append(statement(alice_old, alice_rotated + timedelta(minutes=10)))
    index = {
        "files": {},
        "audit": [dated(new_audit, valid_from=T), dated(old_audit, retired_at=T)],
        "approvers": {
            "alice": [dated(alice_new, valid_from=alice_rotated), dated(alice_old, retired_at=alice_rotated)]
        },
    }
    # a forged pack: the retired audit key signed the third record too, dated at its retirement
    new_from = 4 if forged_record else 3
    out, _ = build_pack(tmp_path, Rotated(new_audit, old_audit, new_from, approvals, index))
    return out


def test_a_pack_verifies_across_a_rotation_of_the_audit_and_an_approver_key(tmp_path: Path) -> None:
    report = verify_pack(rotated_pack(tmp_path))
    assert report.problems == []
    assert any("audit records 1..3 (3) hash-chained and signed" in s for s in report.summary)
    assert any(s.startswith("2 of 2 approval statements verify") for s in report.summary)


def test_what_a_retired_key_signed_after_its_retirement_is_named(tmp_path: Path) -> None:
    report = verify_pack(rotated_pack(tmp_path, forged_record=True, late_statement=True))
    [audit] = [p for p in report.problems if p.startswith("audit record")]
    assert audit.startswith("audit record 3 (release.promoted) is refused: it is signed by the key")
    assert f"after the key was retired at {T.isoformat()}: a retired key signs nothing new" in audit
    [late] = [p for p in report.problems if p.startswith("approvals/statements.json")]
    assert late.startswith("approvals/statements.json statement 3 (alice): the statement is refused")
    assert "a retired key signs nothing new" in late


def test_the_key_index_is_covered_by_the_signed_manifest(tmp_path: Path) -> None:
    out = rotated_pack(tmp_path)
    index = out / "keys" / "trusted.json"
    text = index.read_text()
    assert '"audit"' in text
    report = verify_pack(out)
    assert report.ok
    # the index is covered by the signed manifest: replacing its keys is named as an alteration
    index.write_text(text.replace('"retired_at"', '"valid_until"', 1))
    assert any(p.startswith("keys/trusted.json was altered") for p in verify_pack(out).problems)
