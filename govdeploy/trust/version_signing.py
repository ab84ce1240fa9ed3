"""Signing registered versions: at ``candidate`` level when training registers them, at
``release`` level at promotion (then the signature also covers the approvals)."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from pydantic import BaseModel

from govdeploy.backends import registry
from govdeploy.errors import SignatureError
from govdeploy.trust.signatures import (
    Identity,
    Level,
    artifact_digest,
    sign_directory,
    verify_directory,
    write_identity,
)


class SignedVersion(BaseModel):
    model: str
    version: str
    level: Level
    artifact_digest: str
    signature_sha256: str


def sign_candidate(name: str, version: str, run_id: str, key: Path, tracking_uri: str) -> SignedVersion:
    """Write the identity file into the version's artifacts and sign them (candidate level)."""
    with tempfile.TemporaryDirectory(prefix="govdeploy-sign-") as tmp:
        directory = registry.download_model_dir(name, version, Path(tmp), tracking_uri)
        model_id = registry.logged_model_id(name, version, tracking_uri)
        identity = write_identity(
            directory, Identity(model=name, version=version, model_id=model_id, run_id=run_id)
        )
        signature = sign_directory(directory, key, "candidate")
        signed = SignedVersion(
            model=name,
            version=version,
            level="candidate",
            artifact_digest=artifact_digest(directory),
            signature_sha256=hashlib.sha256(signature.read_bytes()).hexdigest(),
        )
        registry.upload_model_files(name, version, [identity, signature], tracking_uri)
    registry.set_version_tags(
        name,
        version,
        {
            f"{registry.TAG}artifact_digest": signed.artifact_digest,
            f"{registry.TAG}signature.candidate.sha256": signed.signature_sha256,
        },
        tracking_uri,
    )
    return signed


def sign_release(
    name: str,
    version: str,
    approvals_json: bytes,
    approved_digest: str,
    key: Path,
    trusted_keys: list[Path],
    tracking_uri: str,
) -> SignedVersion:
    """Verify the candidate, check it is the approved bytes, add the approvals and sign (release level).

    Uploads ``approvals.json`` and ``release.sig`` only; tags and aliases are the caller's.
    """
    with tempfile.TemporaryDirectory(prefix="govdeploy-sign-") as tmp:
        directory = registry.download_model_dir(name, version, Path(tmp), tracking_uri)
        verify_directory(directory, trusted_keys, "candidate", name, version)
        digest = artifact_digest(directory)
        if digest != approved_digest:
            raise SignatureError(
                f"{name} v{version} artifacts have digest {digest}, not the approved {approved_digest}; "
                "they changed after approval: nothing was promoted"
            )
        approvals = directory / "approvals.json"
        approvals.write_bytes(approvals_json)
        signature = sign_directory(directory, key, "release")
        verify_directory(directory, trusted_keys, "release", name, version)
        registry.upload_model_files(name, version, [approvals, signature], tracking_uri)
        return SignedVersion(
            model=name,
            version=version,
            level="release",
            artifact_digest=digest,
            signature_sha256=hashlib.sha256(signature.read_bytes()).hexdigest(),
        )
