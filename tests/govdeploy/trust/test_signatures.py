from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from govdeploy.errors import SignatureError
from govdeploy.trust.keys import init_keys
from govdeploy.trust.signatures import (
    Identity,
    ReleaseClaims,
    artifact_digest,
    sign_directory,
    verify_directory,
    write_identity,
    write_release_claims,
)


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path]:
    keys, model = tmp_path / "keys", tmp_path / "model"
    init_keys(keys, [])
    model.mkdir()
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "model.skops").write_bytes(b"\x00weights" * 100)
    identity = Identity(
        model="m", version="1", model_id="m-1", run_id="r", submitted_by="dana", submission_proven=True
    )
    write_identity(model, identity)
    sign_directory(model, keys / "candidate.key", "candidate")
    return model, keys


def test_a_signed_directory_verifies(signed: tuple[Path, Path]) -> None:
    model, keys = signed
    assert len(verify_directory(model, [keys / "candidate.pub"], "candidate", "m", "1")) == 64


def test_a_signature_verifies_only_under_its_own_role(signed: tuple[Path, Path]) -> None:
    model, keys = signed
    with pytest.raises(SignatureError, match=r"does not verify against its candidate\.sig"):
        verify_directory(model, [keys / "release.pub"], "candidate", "m", "1")


def test_a_candidate_signature_renamed_to_release_is_refused(signed: tuple[Path, Path]) -> None:
    """Even under one key for both roles, the level is inside the signed content."""
    model, keys = signed
    shutil.copy(model / "candidate.sig", model / "release.sig")
    (model / "approvals.json").write_text("{}")
    write_release_claims(model, ReleaseClaims(model="m", version="1", artifact_digest=artifact_digest(model)))
    with pytest.raises(SignatureError, match=r"release\.sig was not made at release level"):
        verify_directory(model, [keys / "candidate.pub"], "release", "m", "1")


def test_a_release_signature_covers_its_claims(signed: tuple[Path, Path]) -> None:
    model, keys = signed
    (model / "approvals.json").write_text("{}")
    write_release_claims(model, ReleaseClaims(model="m", version="1", artifact_digest=artifact_digest(model)))
    sign_directory(model, keys / "release.key", "release")
    assert verify_directory(model, [keys / "release.pub"], "release", "m", "1")
    assert verify_directory(model, [keys / "candidate.pub"], "candidate", "m", "1")  # still intact
    write_release_claims(model, ReleaseClaims(model="m", version="2", artifact_digest="x"))
    with pytest.raises(SignatureError, match="does not verify"):
        verify_directory(model, [keys / "release.pub"], "release", "m", "1")


def test_symlinks_are_refused(signed: tuple[Path, Path], tmp_path: Path) -> None:
    model, keys = signed
    (tmp_path / "outside").write_text("secret")
    (model / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(SignatureError, match="link is a symlink"):
        verify_directory(model, [keys / "candidate.pub"], "candidate", "m", "1")


def test_identity_of_another_version_and_missing_signature(signed: tuple[Path, Path]) -> None:
    model, keys = signed
    with pytest.raises(SignatureError, match="valid for m v1, not for m v2"):
        verify_directory(model, [keys / "candidate.pub"], "candidate", "m", "2")
    with pytest.raises(SignatureError, match=r"has no release\.sig"):
        verify_directory(model, [keys / "release.pub"], "release", "m", "1")


def test_no_trusted_key_fails_closed(signed: tuple[Path, Path]) -> None:
    model, _ = signed
    with pytest.raises(SignatureError, match="no trusted"):
        verify_directory(model, [], "candidate", "m", "1")


def test_artifact_digest_covers_files_not_signatures(signed: tuple[Path, Path]) -> None:
    model, _ = signed
    digest = artifact_digest(model)
    (model / "release.sig").write_text("{}")
    (model / "approvals.json").write_text("{}")
    write_release_claims(model, ReleaseClaims(model="m", version="1", artifact_digest=digest))
    assert artifact_digest(model) == digest
    (model / "model.skops").write_bytes(b"changed")
    assert artifact_digest(model) != digest


@pytest.mark.parametrize(
    "bundle", ["{}", "[]", "null", '{"dsseEnvelope": {"payload": "", "signatures": []}}']
)
def test_a_malformed_signature_bundle_is_refused_not_a_crash(signed: tuple[Path, Path], bundle: str) -> None:
    model, keys = signed
    (model / "candidate.sig").write_text(bundle)
    with pytest.raises(SignatureError, match=r"does not verify against its candidate\.sig"):
        verify_directory(model, [keys / "candidate.pub"], "candidate", "m", "1")
