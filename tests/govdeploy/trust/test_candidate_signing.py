"""Training signs what it produced: the local directory is signed before upload (evidence included),
and the stored copy must verify with the same digest before the version is tagged."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from govdeploy.backends import registry
from govdeploy.config.approvers import Approvers
from govdeploy.config.policy import ApprovalPolicy
from govdeploy.errors import SignatureError
from govdeploy.trust import versions
from govdeploy.trust.keys import init_keys
from govdeploy.trust.roots import TrustRoots
from govdeploy.trust.signatures import Identity, artifact_digest, verify_directory

URI = "http://127.0.0.1:9"
CLAIMS = Identity(
    model="m", version="3", model_id="m-abc", run_id="r1", submitted_by="dana", submission_proven=True
)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    init_keys(tmp_path / "keys", [])
    return tmp_path / "keys"


def roots(keys: Path, trusted: str = "candidate.pub") -> TrustRoots:
    return TrustRoots(
        keys, {"candidate": [keys / trusted]}, Approvers.model_construct(approvers={}), ApprovalPolicy()
    )


@pytest.fixture
def produced(tmp_path: Path) -> Path:
    """What training writes locally: model files, governance evidence, reference."""
    model = tmp_path / "produced"
    (model / "governance").mkdir(parents=True)
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "model.skops").write_bytes(b"\x00weights" * 100)
    (model / "requirements.txt").write_text("scikit-learn==1.6.1\n")
    (model / "reference.parquet").write_bytes(b"PAR1")
    for name in ("environment.json", "lineage.json", "owners.json", "sbom.cdx.json"):
        (model / "governance" / name).write_text('{"x": 1}')
    return model


class Store:
    """A fake artifact store for one version: uploads copy the directory, downloads copy it back."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root, self.tags = root / "store", dict[str, str]()
        monkeypatch.setattr(registry, "upload_model_dir", self.upload)
        monkeypatch.setattr(registry, "download_model_dir", self.download)
        monkeypatch.setattr(registry, "set_version_tags", lambda n, v, tags, uri: self.tags.update(tags))

    def upload(self, name: str, version: str, directory: Path, tracking_uri: str) -> None:
        shutil.copytree(directory, self.root)

    def download(self, name: str, version: str, destination: Path, tracking_uri: str) -> Path:
        return Path(shutil.copytree(self.root, destination / "artifacts"))


def test_the_local_directory_is_signed_with_its_evidence(produced: Path, keys: Path) -> None:
    signed = versions.sign_local_candidate(produced, CLAIMS, keys / "candidate.key", roots(keys))
    assert signed.artifact_digest == artifact_digest(produced)
    (produced / "governance" / "lineage.json").write_text('{"x": 2}')
    with pytest.raises(SignatureError, match=r"governance/lineage\.json"):
        verify_directory(produced, [keys / "candidate.pub"], "candidate", "m", "3")


def test_a_key_that_is_not_pinned_fails_before_upload(
    produced: Path, keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path, monkeypatch)
    with pytest.raises(SignatureError, match="does not verify"):
        versions.sign_candidate(produced, CLAIMS, keys / "candidate.key", roots(keys, "release.pub"), URI)
    assert not store.root.exists() and store.tags == {}


def test_an_untouched_upload_verifies_and_is_tagged_with_the_local_digest(
    produced: Path, keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path, monkeypatch)
    signed = versions.sign_candidate(produced, CLAIMS, keys / "candidate.key", roots(keys), URI)
    assert store.tags == {
        "govdeploy.artifact_digest": signed.artifact_digest,
        "govdeploy.signature.candidate.sha256": signed.signature_sha256,
    }
    assert artifact_digest(store.root) == signed.artifact_digest


@pytest.mark.parametrize("swapped", ["model.skops", "governance/sbom.cdx.json", "reference.parquet"])
def test_bytes_swapped_in_the_store_after_upload_are_refused_untagged(
    produced: Path, keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swapped: str
) -> None:
    """The insider who swaps a file between upload and the check gets no signature over it."""
    store = Store(tmp_path, monkeypatch)
    upload = store.upload

    def upload_then_swap(name: str, version: str, directory: Path, tracking_uri: str) -> None:
        upload(name, version, directory, tracking_uri)
        (store.root / swapped).write_bytes(b"swapped by an insider")

    monkeypatch.setattr(registry, "upload_model_dir", upload_then_swap)
    with pytest.raises(SignatureError, match=rf"{swapped}.*nothing to promote"):
        versions.sign_candidate(produced, CLAIMS, keys / "candidate.key", roots(keys), URI)
    assert store.tags == {}
