"""Issue 13 part 4: every role rotates (candidate, release, serving, audit and an approver). What the
old keys signed still verifies, new signatures use the new keys, a retired key signs nothing new,
and what a kept copy of a retired key signs after its retirement is refused, naming the key."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from govdeploy.config.approvers import load_approvers
from govdeploy.config.policy import ApprovalPolicy
from govdeploy.config.settings import Settings
from govdeploy.errors import AuditError, ConfigError, SignatureError
from govdeploy.trust.approval_ledger import ApprovalLedger
from govdeploy.trust.approvals import make_statement, read_approval_token, sign_statement
from govdeploy.trust.approver_rotation import rotate_approver
from govdeploy.trust.audit import AuditLog, AuditRecord, record_hash
from govdeploy.trust.audit_keys import audit_public_key
from govdeploy.trust.audit_verify import read_records, verify
from govdeploy.trust.keys import fingerprint, init_keys, load_ed25519_private, signing_key, trusted_keys
from govdeploy.trust.rotation import rotate
from govdeploy.trust.serving_records import sign_record, verify_record
from govdeploy.trust.signatures import verify_directory
from tests.govdeploy.trust.rotation_world import World, pub, record, signed
from tests.govdeploy.trust.test_approvals import REQUEST

ROLES = ("candidate", "release", "serving", "audit")
RETIRED = r"after the key was retired at .*: a retired key signs nothing new"


def approval(key: Path, approver: str = "alice") -> str:
    return sign_statement(make_statement(REQUEST, approver, "approve", "ok", 30), load_ed25519_private(key))


def ledger(world: World) -> ApprovalLedger:
    policy = ApprovalPolicy(quorum=2, required_roles=["risk-officer"], statement_expiry_minutes=60)
    approvers = load_approvers(world.settings.approvers_path)
    return ApprovalLedger(REQUEST, policy, approvers, world.settings.keys_dir)


def forged_audit_record(world: World, key: Path) -> AuditRecord:
    """A record chained to the trail's head, signed with ``key``, dated now."""
    head = read_records(world.settings.audit_log_path)[-1]
    forged = AuditRecord(
        seq=head.seq + 1,
        id="forged",
        time=datetime.now(UTC).isoformat(timespec="microseconds"),
        actor="mallory",
        action="release.promoted",
        prev=head.hash,
    )
    forged.hash = record_hash(forged)
    forged.signature = base64.b64encode(load_ed25519_private(key).sign(bytes.fromhex(forged.hash))).decode()
    return forged


def test_every_role_rotates_and_the_audit_trail_verifies_across_it(world: World) -> None:
    settings = world.settings
    init_keys(settings.keys_dir, ["alice", "bob", "dana", "erin"])
    models = {level: signed(world, level, f"{level}-old") for level in ("candidate", "release")}
    old_record = sign_record(record(datetime.now(UTC), 1), signing_key(settings, "serving"))
    world.writer().append("before.rotation", "t")
    old_approval = approval(settings.keys_dir / "approvers" / "alice.key")
    old_audit = audit_public_key(settings).key

    done = {role: rotate(settings, role, world.writer()) for role in ROLES}  # type: ignore[arg-type]
    done["approver"] = rotate_approver(settings, "alice", world.root / "alice-2.key", world.writer())
    for rotation in done.values():
        assert rotation.retired != rotation.current

    # candidate, release: old bundles verify, new ones are made with the new key only
    for level in ("candidate", "release"):
        trusted = trusted_keys(settings, level)
        assert verify_directory(models[level], trusted, level, "m", "1")
        fresh = signed(world, level, f"{level}-new")
        assert verify_directory(fresh, [pub(world, level)], level, "m", "1")
    # serving: the record of before still verifies under the trusted keys as the gateway reads them
    assert verify_record(old_record, trusted_keys(settings, "serving")).sequence == 1
    # audit: records before under the old key, the rotation record and those after under the new one
    world.writer().append("after.rotation", "t")
    trail = read_records(world.settings.audit_log_path)
    audit_rotation = next(r for r in trail if r.payload.get("role") == "audit")
    ring = audit_public_key(settings).keys
    assert verify(world.settings.audit_log_path, ring, world.anchors.all()).ok
    assert not verify(
        world.settings.audit_log_path, old_audit, world.anchors.all()
    ).ok  # the new key signs from T on
    signed_new = [r for r in trail if r.seq >= audit_rotation.seq]
    assert all(ring.keys[0].verifies(r.signature, bytes.fromhex(r.hash)) for r in signed_new)
    assert [r.payload["role"] for r in trail if r.action == "key.rotated"] == [*ROLES, "approver"]
    # approver: the statement issued before T counts, one signed with the new key too
    counting = ledger(world)
    assert counting.consider(old_approval).accepted
    counting = ledger(world)
    assert counting.consider(approval(world.root / "alice-2.key")).accepted


def test_the_retired_keys_are_refused_after_their_retirement(world: World) -> None:
    settings = world.settings
    init_keys(settings.keys_dir, ["alice", "bob", "dana", "erin"])
    world.writer().append("before.rotation", "t")
    kept = {role: world.keep(role) for role in ROLES}
    alice_old = settings.keys_dir / "approvers" / "alice.key"
    done = {role: rotate(settings, role, world.writer()) for role in ROLES}  # type: ignore[arg-type]
    rotate_approver(settings, "alice", world.root / "alice-2.key", world.writer())

    # model signing and serving: the kept copies are refused as signing keys
    for role in ("candidate", "release", "serving"):
        holder = Settings(
            state_dir=settings.state_dir,
            config_dir=settings.config_dir,
            **{f"{role}_key": kept[role]},  # type: ignore[arg-type]
        )
        with pytest.raises(ConfigError, match=rf"the {role} signing key .* may not sign now \(retired_at"):
            signing_key(holder, role)
    # a serving record the retired key signed after its retirement is refused, naming why
    late = record(done["serving"].at + timedelta(seconds=1), 2)
    with pytest.raises(SignatureError, match=rf"serving.*could not sign it: .*{RETIRED}"):
        verify_record(sign_record(late, kept["serving"]), trusted_keys(settings, "serving"))
    assert verify_record(
        sign_record(late, signing_key(settings, "serving")), trusted_keys(settings, "serving")
    )

    # audit: a writer with the retired key signs nothing new ...
    ring = audit_public_key(settings).keys
    stale = AuditLog(
        world.settings.audit_log_path, load_ed25519_private(kept["audit"]), world.anchors, keys=ring
    )
    with pytest.raises(AuditError, match=rf"the audit signing key .* may not sign at .*{RETIRED}"):
        stale.append("late.record", "mallory")
    # ... and a record it signed with a time after its retirement is refused by verification
    forged = forged_audit_record(world, kept["audit"])
    copy = world.root / "forged.jsonl"
    copy.write_bytes(world.settings.audit_log_path.read_bytes() + forged.model_dump_json().encode() + b"\n")
    problems = verify(copy, ring, world.anchors.all()).problems
    assert any(f"record {forged.seq} (release.promoted) is refused" in p and "retired" in p for p in problems)

    # approver: a statement signed with the retired key, issued after its retirement, is refused
    outcome = ledger(world).consider(approval(alice_old))
    assert not outcome.accepted
    assert "the statement is refused: it is signed by the key" in outcome.reason
    assert "a retired key signs nothing new" in outcome.reason
    # its fingerprint is the retired one, recorded in the trail
    rotations = [
        r for r in read_records(world.settings.audit_log_path) if r.payload.get("role") == "approver"
    ]
    assert rotations[0].payload["retired_key"] == fingerprint(
        (settings.keys_dir / "approvers" / "alice.pub").read_bytes()
    )
    assert read_approval_token(approval(alice_old)).statement.approver == "alice"


def test_the_command_rotates_an_approver_key_into_the_given_file(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from govdeploy import cli
    from govdeploy.config.settings import get_settings
    from govdeploy.trust import audit_trail

    init_keys(world.settings.keys_dir, ["alice", "bob", "dana", "erin"])
    monkeypatch.setenv("GOVDEPLOY_STATE_DIR", str(world.settings.state_dir))
    monkeypatch.setenv("GOVDEPLOY_CONFIG_DIR", str(world.settings.config_dir))
    monkeypatch.setattr(audit_trail, "audit_log", lambda settings, retention: world.writer())
    get_settings.cache_clear()
    out = world.root / "bob-2.key"
    try:
        args = ["keys", "rotate", "--role", "approver", "--approver", "bob", "--out", str(out)]
        result = CliRunner().invoke(cli.app, args)
        assert result.exit_code == 0, (result.output, result.exception)
        assert "rotated approver bob's key at" in result.output
        assert f"current  sha256 {fingerprint(out.with_suffix('.pub').read_bytes())}" in result.output
        assert out.stat().st_mode & 0o777 == 0o600
        again = CliRunner().invoke(cli.app, args)
        assert again.exit_code == 1 and "exists; give --out a new file" in str(again.exception)
    finally:
        get_settings.cache_clear()
    assert ledger(world).consider(approval(out, "bob")).accepted
