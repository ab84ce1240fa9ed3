"""Key rotation: every signing role rotates; what the old keys signed still verifies, new signatures
use the new keys, a retired key signs nothing new, and the audit trail records each rotation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from govdeploy.config.settings import Settings
from govdeploy.config.trust import header_of, load_trust
from govdeploy.errors import AuditError, ConfigError, SignatureError
from govdeploy.trust.audit_verify import read_records, verify
from govdeploy.trust.keys import fingerprint, init_keys, signing_key, trusted_keys
from govdeploy.trust.rotation import rotate, rotation_due
from govdeploy.trust.serving_records import sign_record, verify_record
from govdeploy.trust.signatures import verify_directory
from tests.conftest import CONFIG_DIR
from tests.govdeploy.trust.rotation_world import World, pub, record, signed


def test_every_signing_role_rotates(world: World) -> None:
    settings = world.settings
    before = {level: signed(world, level, f"{level}-old") for level in ("candidate", "release")}
    old_record = record(datetime.now(UTC), 1)
    old_document = sign_record(old_record, signing_key(settings, "serving"))
    kept = {role: world.keep(role) for role in ("candidate", "release", "serving")}
    old_fingerprints = {role: fingerprint(pub(world, role).read_bytes()) for role in kept}

    rotations = {role: rotate(settings, role, world.audit) for role in ("candidate", "release", "serving")}  # type: ignore[arg-type]

    for role, done in rotations.items():
        assert (
            done.retired
            == old_fingerprints[role]
            != done.current
            == fingerprint(pub(world, role).read_bytes())
        )
        assert done.at.microsecond == 0 and abs(datetime.now(UTC) - done.at) < timedelta(seconds=5)
        [current, retired] = load_trust(settings.trust_path).roles[role]  # type: ignore[index]
        assert (current.key_file, current.valid_from, current.retired_at) == (f"{role}.pub", done.at, None)
        assert (retired.key_file, retired.retired_at) == (None, done.at)
        assert retired.public_key is not None and fingerprint(retired.public_key.encode()) == done.retired
        # a retired key signs nothing new: a kept copy of it is refused
        with pytest.raises(ConfigError, match=rf"the {role} signing key .* may not sign now \(retired_at"):
            signing_key(
                Settings(
                    state_dir=settings.state_dir,
                    config_dir=settings.config_dir,
                    **{f"{role}_key": kept[role]},
                ),
                role,
            )  # type: ignore[arg-type]

    for level in ("candidate", "release"):
        trusted = trusted_keys(settings, level)  # type: ignore[arg-type]
        assert len(trusted) == 2 and trusted[0] == pub(world, level)
        # what the old key signed still verifies
        assert verify_directory(before[level], trusted, level, "m", "1")  # type: ignore[arg-type]
        # new signatures are made with the new key, and only it verifies them
        after = signed(world, level, f"{level}-new")
        assert verify_directory(after, trusted, level, "m", "1")  # type: ignore[arg-type]
        assert verify_directory(after, [pub(world, level)], level, "m", "1")  # type: ignore[arg-type]
        with pytest.raises(SignatureError, match="does not verify"):
            verify_directory(after, [trusted[1]], level, "m", "1")  # type: ignore[arg-type]
        with pytest.raises(SignatureError, match="does not verify"):
            verify_directory(before[level], [pub(world, level)], level, "m", "1")  # type: ignore[arg-type]

    at = rotations["serving"].at
    # the serving record signed before the rotation still verifies, also by its signed time
    assert verify_record(old_document, trusted_keys(settings, "serving")) == old_record
    assert verify_record(old_document, trusted_keys(settings, "serving", signed_at=at - timedelta(seconds=1)))
    # a record the retired key signs, dated after its retirement, is refused by its signed time
    late = record(at + timedelta(seconds=1), 2)
    forged = sign_record(late, kept["serving"])
    with pytest.raises(SignatureError, match="not signed by a trusted key"):
        verify_record(forged, trusted_keys(settings, "serving", signed_at=at + timedelta(seconds=1)))
    fresh = sign_record(late, signing_key(settings, "serving"))
    assert (
        verify_record(fresh, trusted_keys(settings, "serving", signed_at=at + timedelta(seconds=1))) == late
    )
    with pytest.raises(SignatureError):
        verify_record(fresh, [trusted_keys(settings, "serving")[1]])

    rotated = [r for r in read_records(world.audit.path) if r.action == "key.rotated"]
    assert [(r.payload["role"], r.payload["retired_key"], r.payload["new_key"]) for r in rotated] == [
        (role, done.retired, done.current) for role, done in rotations.items()
    ]
    assert verify(world.audit.path, world.audit.public_key, world.anchors.all()).ok


def test_a_key_rotated_twice_still_verifies_what_it_signed_first(world: World) -> None:
    first = signed(world, "candidate", "first")
    rotate(world.settings, "candidate", world.audit)
    second = signed(world, "candidate", "second")
    rotate(world.settings, "candidate", world.audit)
    trusted = trusted_keys(world.settings, "candidate")
    assert len(trusted) == 3
    for directory in (first, second, signed(world, "candidate", "third")):
        assert verify_directory(directory, trusted, "candidate", "m", "1")
    text = world.settings.trust_path.read_text()
    assert header_of(text) == header_of((CONFIG_DIR / "trust.yaml").read_text())
    roles = text[text.index("\nroles:") :]
    assert roles.count("retired_at:") == 2 and roles.count("valid_from:") == 2


def test_a_key_from_a_secret_store_is_rotated_there(world: World) -> None:
    secret = world.keep("release")
    settings = Settings(
        state_dir=world.settings.state_dir, config_dir=world.settings.config_dir, release_key=secret
    )
    with pytest.raises(ConfigError, match="comes from GOVDEPLOY_RELEASE_KEY"):
        rotate(settings, "release", world.audit)


def test_no_audit_record_no_rotation(world: World) -> None:
    files = [world.settings.trust_path, world.settings.keys_dir / "candidate.key", pub(world, "candidate")]
    before = [path.read_bytes() for path in files]
    world.anchors.fail = True
    with pytest.raises(
        AuditError, match="the candidate key was not rotated: its audit record could not be written"
    ):
        rotate(world.settings, "candidate", world.audit)
    assert [path.read_bytes() for path in files] == before
    assert not list(world.settings.keys_dir.glob("*.rotating"))
    signing_key(world.settings, "candidate")  # the old key still signs


def test_a_key_that_is_not_pinned_signs_nothing(world: World) -> None:
    other = world.root / "other"
    init_keys(other, [])
    settings = Settings(
        state_dir=world.settings.state_dir,
        config_dir=world.settings.config_dir,
        candidate_key=other / "candidate.key",
    )
    with pytest.raises(ConfigError, match="is not a trusted candidate key of"):
        signing_key(settings, "candidate")
    (world.settings.keys_dir / "candidate.key").write_bytes((other / "candidate.key").read_bytes())
    with pytest.raises(ConfigError, match="pin it there before rotating it"):
        rotate(world.settings, "candidate", world.audit)


def test_keys_due_for_rotation(world: World) -> None:
    assert rotation_due(world.settings) == []
    later = datetime.now(UTC) + timedelta(days=366)
    due = rotation_due(world.settings, later)
    assert sorted(d.role for d in due) == ["audit", "candidate", "release", "serving"]
    assert all(d.age_days == 366 and "govdeploy keys rotate --role" in d.reason for d in due)
    done = rotate(world.settings, "serving", world.audit)
    [serving] = [
        d for d in rotation_due(world.settings, done.at + timedelta(days=400)) if d.role == "serving"
    ]
    assert (serving.since, serving.age_days) == (done.at, 400)  # the new key's valid_from, not its file


def test_the_command_rotates_and_names_both_keys(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from govdeploy import cli
    from govdeploy.config.settings import get_settings
    from govdeploy.trust import audit_trail

    monkeypatch.setenv("GOVDEPLOY_STATE_DIR", str(world.settings.state_dir))
    monkeypatch.setenv("GOVDEPLOY_CONFIG_DIR", str(world.settings.config_dir))
    monkeypatch.setattr(audit_trail, "audit_log", lambda settings, retention: world.audit)
    get_settings.cache_clear()
    try:
        old = fingerprint(pub(world, "serving").read_bytes())
        result = CliRunner().invoke(cli.app, ["keys", "rotate", "--role", "serving"])
        assert result.exit_code == 0, (result.output, result.exception)
        assert "rotated the serving key at" in result.output and f"retired  sha256 {old}" in result.output
        assert f"current  sha256 {fingerprint(pub(world, 'serving').read_bytes())}" in result.output
        refused = CliRunner().invoke(cli.app, ["keys", "rotate", "--role", "approver"])
        assert refused.exit_code == 2 and "--approver and --out go with --role approver" in refused.output
    finally:
        get_settings.cache_clear()
