"""One streaming pass per signature and per verification: the manifest, the bundle and the artifact
digest come from it; bundles stay verifiable by stock model signing; memory does not grow with files."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from model_signing import hashing, signing, verifying
from model_signing._hashing import io as model_signing_io

from govdeploy.errors import SignatureError
from govdeploy.trust import manifests
from govdeploy.trust.keys import init_keys
from govdeploy.trust.signatures import (
    Identity,
    ReleaseClaims,
    artifact_digest,
    sign_and_digest,
    verify_and_digest,
    write_identity,
    write_release_claims,
)

# artifact_digest of the ``model`` fixture, as the whole-file implementation computed it
GOLDEN_DIGEST = "acfea241cde3d5a5a9eedc90d5970e083306b9e7e336119c256b9fcbd82245e2"
CANDIDATE_IGNORED = ["candidate.sig", "release.sig", "approvals.json", "govdeploy-release.json"]


def whole_file_digest(model_dir: Path, ignored: list[str]) -> str:
    """The artifact digest as it used to be computed: a separate pass reading each file whole."""
    entries = []
    for path in sorted(model_dir.rglob("*")):
        relative = path.relative_to(model_dir).as_posix()
        if path.is_file() and relative not in ignored:
            entries.append(f"{relative}\0{hashlib.sha256(path.read_bytes()).hexdigest()}")
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    init_keys(tmp_path / "keys", [])
    return tmp_path / "keys"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """Names whose path order differs from their string order, nesting, dot files, an empty file."""
    model = tmp_path / "model"
    for directory in ("a", "a/b", "governance", ".git"):
        (model / directory).mkdir(parents=True)
    files = {
        "MLmodel": b"flavors: {}\n",
        "model.skops": b"\x00weights" * 1000,
        "a.txt": b"a",
        "a/b/c": b"c",
        "a/z": b"",
        "governance/approvals.json": b"{}",  # only the top-level name is the release's
        ".git/HEAD": b"ref: refs/heads/main\n",
        ".gitignore": b"*.tmp\n",
    }
    for name, data in files.items():
        (model / name).write_bytes(data)
    write_identity(
        model,
        Identity(
            model="m", version="1", model_id="m-1", run_id="r", submitted_by="d", submission_proven=True
        ),
    )
    return model


def stock_config() -> hashing.Config:
    return hashing.Config().set_ignored_paths(paths=CANDIDATE_IGNORED, ignore_git_paths=False)


def decoys(directory: Path, count: int) -> list[Path]:
    directory.mkdir(exist_ok=True)
    paths = []
    for index in range(count):
        key = ec.generate_private_key(ec.SECP256R1()).public_key()
        path = directory / f"decoy-{index}.pub"
        path.write_bytes(
            key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        paths.append(path)
    return paths


def counting(monkeypatch: pytest.MonkeyPatch, target: Any, name: str) -> list[Any]:
    """Record the first argument of every call of ``target.name``."""
    calls: list[Any] = []
    original: Callable[..., Any] = getattr(target, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0] if args else None)
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, wrapper)
    return calls


def test_the_artifact_digest_keeps_its_value(model: Path, keys: Path) -> None:
    before = whole_file_digest(model, CANDIDATE_IGNORED)
    assert before == GOLDEN_DIGEST
    assert artifact_digest(model) == before
    assert sign_and_digest(model, keys / "candidate.key", "candidate").artifact_digest == before
    assert verify_and_digest(model, [keys / "candidate.pub"], "candidate", "m", "1").artifact_digest == before


def test_a_release_pass_gives_the_candidate_digest(model: Path, keys: Path) -> None:
    digest = sign_and_digest(model, keys / "candidate.key", "candidate").artifact_digest
    (model / "approvals.json").write_text("{}")
    write_release_claims(model, ReleaseClaims(model="m", version="1", artifact_digest=digest))
    assert sign_and_digest(model, keys / "release.key", "release").artifact_digest == digest
    assert verify_and_digest(model, [keys / "release.pub"], "release", "m", "1").artifact_digest == digest
    assert artifact_digest(model, "release") == whole_file_digest(model, ["candidate.sig", "release.sig"])


def test_stock_model_signing_verifies_our_bundles(model: Path, keys: Path) -> None:
    signed = sign_and_digest(model, keys / "candidate.key", "candidate")
    assert signed.signature_sha256 == hashlib.sha256(signed.signature.read_bytes()).hexdigest()
    verifier = verifying.Config().use_elliptic_key_verifier(public_key=keys / "candidate.pub")
    verifier.set_hashing_config(stock_config()).verify(model, signed.signature)
    # the stock default configuration skips git files; without any, the bundle's own record is enough
    (model / ".git" / "HEAD").unlink()
    (model / ".gitignore").unlink()
    sign_and_digest(model, keys / "candidate.key", "candidate")
    verifying.Config().use_elliptic_key_verifier(public_key=keys / "candidate.pub").verify(
        model, signed.signature
    )
    with pytest.raises(ValueError, match="Key mismatch"):
        verifying.Config().use_elliptic_key_verifier(public_key=keys / "release.pub").verify(
            model, signed.signature
        )
    (model / "a.txt").write_bytes(b"b")
    with pytest.raises(ValueError, match=r"a\.txt"):
        verifying.Config().use_elliptic_key_verifier(public_key=keys / "candidate.pub").verify(
            model, signed.signature
        )


def test_stock_bundles_verify_with_ours(model: Path, keys: Path) -> None:
    signer = signing.Config().use_elliptic_key_signer(private_key=keys / "candidate.key")
    signer.set_hashing_config(stock_config()).sign(model, model / "candidate.sig")
    verified = verify_and_digest(model, [keys / "candidate.pub"], "candidate", "m", "1")
    assert verified.artifact_digest == GOLDEN_DIGEST
    assert verified.signer == keys / "candidate.pub"


@pytest.mark.parametrize("position", [0, 4])
def test_the_model_is_hashed_once_whatever_the_number_of_keys(
    model: Path, keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, position: int
) -> None:
    sign_and_digest(model, keys / "candidate.key", "candidate")
    trusted = decoys(tmp_path / "decoys", 4)
    trusted.insert(position, keys / "candidate.pub")
    hashed = counting(monkeypatch, manifests, "hash_directory")
    assert verify_and_digest(model, trusted, "candidate", "m", "1").signer == keys / "candidate.pub"
    assert len(hashed) == 1


def test_a_tampered_model_is_hashed_once_even_under_a_key_listed_twice(
    model: Path, keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_and_digest(model, keys / "candidate.key", "candidate")
    (model / "a" / "b" / "c").write_bytes(b"C")
    hashed = counting(monkeypatch, manifests, "hash_directory")
    pub = keys / "candidate.pub"
    with pytest.raises(SignatureError, match=r"does not verify against its candidate\.sig.*a/b/c has sha256"):
        verify_and_digest(model, [*decoys(tmp_path / "d", 2), pub, pub], "candidate", "m", "1")
    assert len(hashed) == 1


def test_no_trusted_signer_means_nothing_is_hashed(
    model: Path, keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sign_and_digest(model, keys / "candidate.key", "candidate")
    hashed = counting(monkeypatch, manifests, "hash_directory")
    with pytest.raises(SignatureError, match=r"decoy-0\.pub: ValueError: Key mismatch.*release\.pub"):
        verify_and_digest(model, [*decoys(tmp_path / "d", 1), keys / "release.pub"], "candidate", "m", "1")
    assert hashed == []


def test_what_differs_is_named(model: Path, keys: Path) -> None:
    sign_and_digest(model, keys / "candidate.key", "candidate")
    (model / "a.txt").rename(model / "b.txt")
    (model / "model.skops").write_bytes(b"swapped")
    with pytest.raises(SignatureError) as refused:
        verify_and_digest(model, [keys / "candidate.pub"], "candidate", "m", "1")
    message = str(refused.value)
    assert "(signed by candidate.pub)" in message
    assert "b.txt is not signed" in message and "a.txt is missing" in message
    assert f"model.skops has sha256 {hashlib.sha256(b'swapped').hexdigest()[:16]}" in message


def test_signing_and_verifying_read_each_file_once(
    model: Path, keys: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not hasattr(model_signing_io, "open")  # its file hasher calls the builtin: shadow it there
    opened: list[str] = []

    def recording(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(Path(file).relative_to(model).as_posix())
        return open(file, *args, **kwargs)

    monkeypatch.setattr(model_signing_io, "open", recording, raising=False)
    covered = sorted(p.relative_to(model).as_posix() for p in model.rglob("*") if p.is_file())
    sign_and_digest(model, keys / "candidate.key", "candidate")
    assert sorted(opened) == covered
    opened.clear()
    verify_and_digest(model, [keys / "candidate.pub"], "candidate", "m", "1")
    assert sorted(opened) == covered


def test_hashing_a_large_file_streams_in_bounded_memory(tmp_path: Path) -> None:
    model = tmp_path / "large"
    model.mkdir()
    with open(model / "weights.bin", "wb") as weights:  # 64 MiB: a sparse file, read like any other
        weights.truncate(64 << 20)
        weights.seek(1 << 20)
        weights.write(os.urandom(4096))
    tracemalloc.start()
    try:
        found = manifests.hash_directory(model, [])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"hashing a 64 MiB file peaked at {peak / 2**20:.1f} MiB of Python memory"
    with open(model / "weights.bin", "rb") as weights:
        expected = hashlib.file_digest(weights, "sha256").hexdigest()
    assert manifests.file_digests(found) == {"weights.bin": expected}


def test_a_special_file_is_refused_not_a_hang(model: Path, keys: Path) -> None:
    sign_and_digest(model, keys / "candidate.key", "candidate")
    os.mkfifo(model / "pipe")
    with pytest.raises(SignatureError, match="pipe"):
        verify_and_digest(model, [keys / "candidate.pub"], "candidate", "m", "1")
