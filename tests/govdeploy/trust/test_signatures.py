from __future__ import annotations

from pathlib import Path

import pytest

from govdeploy.errors import SignatureError
from govdeploy.trust.keys import init_keys
from govdeploy.trust.signatures import (
    Identity,
    artifact_digest,
    sign_directory,
    verify_directory,
    write_identity,
)


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path]:
    keys, model = tmp_path / "keys", tmp_path / "model"
    init_keys(keys, [])
    model.mkdir()
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "model.skops").write_bytes(b"\x00weights" * 100)
    write_identity(model, Identity(model="m", version="1", model_id="m-1", run_id="r"))
    sign_directory(model, keys / "signing.key", "candidate")
    return model, keys


def test_a_signed_directory_verifies(signed: tuple[Path, Path]) -> None:
    model, keys = signed
    assert len(verify_directory(model, [keys / "signing.pub"], "candidate", "m", "1")) == 64


def test_symlinks_are_refused(signed: tuple[Path, Path], tmp_path: Path) -> None:
    model, keys = signed
    (tmp_path / "outside").write_text("secret")
    (model / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(SignatureError, match="link is a symlink"):
        verify_directory(model, [keys / "signing.pub"], "candidate", "m", "1")


def test_identity_of_another_version_and_missing_signature(signed: tuple[Path, Path]) -> None:
    model, keys = signed
    with pytest.raises(SignatureError, match="valid for m v1, not for m v2"):
        verify_directory(model, [keys / "signing.pub"], "candidate", "m", "2")
    with pytest.raises(SignatureError, match=r"has no release\.sig"):
        verify_directory(model, [keys / "signing.pub"], "release", "m", "1")


def test_artifact_digest_covers_files_not_signatures(signed: tuple[Path, Path]) -> None:
    model, _ = signed
    digest = artifact_digest(model)
    (model / "release.sig").write_text("{}")
    assert artifact_digest(model) == digest
    (model / "model.skops").write_bytes(b"changed")
    assert artifact_digest(model) != digest
