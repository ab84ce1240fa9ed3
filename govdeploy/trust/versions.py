"""Signed registered versions: signing them, verifying them, and the one way to load them.

Training signs the files it produced, locally and before upload, at ``candidate`` level (the model,
its governance evidence and reference), then checks that the stored copy verifies with the same
digest; promotion signs the approved bytes at ``release`` level (the signature then also covers
``approvals.json``). Every read of a version's
files goes through ``verified_directory``: a fresh private download whose every file verified
against its signature under the pinned keys of that level's role (and the signed claims against the
requested model and version); at release level the approvals it carries must also make a quorum
under the current approver list and policy, none by the submitter named in the signed candidate
claims. ``load_verified_model`` deserialises the model only from those same verified bytes.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from govdeploy.backends import registry
from govdeploy.backends.model_files import load_sklearn_model
from govdeploy.errors import RegistryError, SignatureError
from govdeploy.trust.approval_ledger import verify_release_approvals
from govdeploy.trust.approvals import ApprovalRequest
from govdeploy.trust.roots import TrustRoots
from govdeploy.trust.signatures import (
    APPROVALS_FILE,
    Identity,
    Level,
    ReleaseClaims,
    VerifiedDirectory,
    read_identity,
    read_release_claims,
    sign_and_digest,
    verify_and_digest,
    write_identity,
    write_release_claims,
)

PROFILE_FILE = "reference_profile.json"
REFERENCE_FILE = "reference.parquet"


class SignedVersion(BaseModel):
    model: str
    version: str
    level: Level
    artifact_digest: str
    signature_sha256: str


@dataclass(frozen=True)
class VerifiedModel:
    model: Any
    name: str
    version: str
    level: Level
    signature_sha256: str
    artifact_digest: str
    inputs: list[str]
    input_types: dict[str, str]
    identity: Identity  # the signed candidate claims (submitter), never a tag
    # the signed training profile (``reference_profile.json``; see govdeploy.release.reference), if logged
    profile: dict[str, Any] | None = None


@dataclass(frozen=True)
class VersionCheck:
    name: str
    version: str
    level: Level
    signature_sha256: str
    artifact_digest: str
    files: int
    identity: Identity


@contextmanager
def _download(name: str, version: str, tracking_uri: str) -> Iterator[Path]:
    """The version's artifact directory in a fresh private directory, removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="govdeploy-version-"))
    try:
        yield registry.download_model_dir(name, version, workdir, tracking_uri)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def verify_files(directory: Path, name: str, version: str, roots: TrustRoots, level: Level) -> str:
    """Every file of ``directory`` against its ``level`` signature under that role's pinned keys; at
    release level also the approvals it carries, under the current approver list and policy.
    Returns the signature's SHA-256; SignatureError otherwise."""
    return _verify(directory, name, version, roots, level).signature_sha256


def _verify(directory: Path, name: str, version: str, roots: TrustRoots, level: Level) -> VerifiedDirectory:
    """``verify_files``, with the artifact digest of the same pass."""
    verified = verify_and_digest(directory, roots.signers(level), level, name, version)
    digest = verified.artifact_digest
    if level == "release":
        claims = read_release_claims(directory)
        if claims.artifact_digest != digest:
            raise SignatureError(
                f"{name} v{version}: the release claims digest {claims.artifact_digest}, the files "
                f"have {digest}"
            )
        request = ApprovalRequest(
            flow_run_id="",
            model=name,
            version=version,
            artifact_digest=digest,
            submitted_by=(identity := read_identity(directory)).submitted_by,
            submission_proven=identity.submission_proven,
            policy_digest="",
        )
        approvals = (directory / APPROVALS_FILE).read_bytes()
        verify_release_approvals(approvals, request, roots.approval, roots.approvers, roots.keys_dir)
    return verified


@contextmanager
def _verified(
    name: str, version: str, *, roots: TrustRoots, level: Level, tracking_uri: str
) -> Iterator[tuple[Path, VerifiedDirectory]]:
    with _download(name, version, tracking_uri) as directory:
        yield directory, _verify(directory, name, version, roots, level)


@contextmanager
def verified_directory(
    name: str, version: str, *, roots: TrustRoots, level: Level, tracking_uri: str
) -> Iterator[tuple[Path, str]]:
    """A private download of the version whose every file verified; yields (directory, signature sha256)."""
    with _verified(name, version, roots=roots, level=level, tracking_uri=tracking_uri) as (
        directory,
        verified,
    ):
        yield directory, verified.signature_sha256


def load_verified_model(
    name: str, version: str, *, roots: TrustRoots, level: Level, tracking_uri: str
) -> VerifiedModel:
    """Download, verify every file, then load; raise SignatureError before loading anything."""
    with _verified(name, version, roots=roots, level=level, tracking_uri=tracking_uri) as (
        directory,
        verified,
    ):
        files = load_sklearn_model(directory, f"model {name!r} version {version}")
        profile_file = directory / PROFILE_FILE
        profile = json.loads(profile_file.read_text(encoding="utf-8")) if profile_file.is_file() else None
        identity = read_identity(directory)
    return VerifiedModel(
        files.model,
        name,
        version,
        level,
        verified.signature_sha256,
        verified.artifact_digest,
        files.inputs,
        files.input_types,
        identity,
        profile,
    )


def verify_version(
    name: str, version: str, *, roots: TrustRoots, level: Level, tracking_uri: str
) -> VersionCheck:
    """Re-hash every file of a version in the artifact store and check its signature (and, at release
    level, its approvals); load nothing."""
    with _verified(name, version, roots=roots, level=level, tracking_uri=tracking_uri) as (
        directory,
        verified,
    ):
        files = sum(1 for p in directory.rglob("*") if p.is_file())
        identity = read_identity(directory)
        return VersionCheck(
            name, version, level, verified.signature_sha256, verified.artifact_digest, files, identity
        )


def sign_local_candidate(directory: Path, claims: Identity, key: Path, roots: TrustRoots) -> SignedVersion:
    """Write the candidate claims into the local ``directory`` training produced, sign every file of it
    at candidate level with ``key`` and verify it under the pinned candidate keys (a key that is not
    pinned fails here, before anything is uploaded)."""
    write_identity(directory, claims)
    signed = sign_and_digest(directory, key, "candidate")
    verify_files(directory, claims.model, claims.version, roots, "candidate")
    return SignedVersion(
        model=claims.model,
        version=claims.version,
        level="candidate",
        artifact_digest=signed.artifact_digest,
        signature_sha256=signed.signature_sha256,
    )


def check_uploaded(signed: SignedVersion, roots: TrustRoots, tracking_uri: str) -> VersionCheck:
    """Download the version back and verify it at candidate level; its files must be the ones signed
    locally (same artifact digest, same signature). SignatureError otherwise."""
    name, version = signed.model, signed.version
    try:
        check = verify_version(name, version, roots=roots, level="candidate", tracking_uri=tracking_uri)
    except SignatureError as exc:
        raise SignatureError(
            f"{exc}; the upload of {name} v{version} does not verify as signed: nothing to promote, retrain"
        ) from None
    if (check.artifact_digest, check.signature_sha256) != (signed.artifact_digest, signed.signature_sha256):
        raise SignatureError(
            f"{name} v{version} in the artifact store has digest {check.artifact_digest} and signature "
            f"{check.signature_sha256}, training signed {signed.artifact_digest} and "
            f"{signed.signature_sha256}: the files changed after upload; nothing to promote, retrain"
        )
    return check


def sign_candidate(
    directory: Path, claims: Identity, key: Path, roots: TrustRoots, tracking_uri: str
) -> SignedVersion:
    """Sign what training produced: the local ``directory`` (model files, governance evidence,
    reference) with its claims, at candidate level, before upload; upload it as the version's
    artifacts; download it back and check it verifies with the same digest; then tag the version
    with that digest and signature. SignatureError (and no tags) when the stored files differ."""
    signed = sign_local_candidate(directory, claims, key, roots)
    registry.upload_model_dir(claims.model, claims.version, directory, tracking_uri)
    check_uploaded(signed, roots, tracking_uri)
    registry.set_version_tags(
        claims.model,
        claims.version,
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
    roots: TrustRoots,
    tracking_uri: str,
) -> SignedVersion:
    """Verify the candidate, check it is the approved bytes, add the approvals and the release claims
    and sign (release level, with the release role's key); the result must verify as a release,
    approvals included, before anything is uploaded.

    Uploads ``approvals.json``, ``govdeploy-release.json`` and ``release.sig`` only; tags and aliases
    are the caller's.
    """
    with _verified(name, version, roots=roots, level="candidate", tracking_uri=tracking_uri) as (
        directory,
        verified,
    ):
        digest = verified.artifact_digest
        if digest != approved_digest:
            raise SignatureError(
                f"{name} v{version} artifacts have digest {digest}, not the approved {approved_digest}; "
                "they changed after approval: nothing was promoted"
            )
        approvals = directory / APPROVALS_FILE
        approvals.write_bytes(approvals_json)
        claims = write_release_claims(
            directory, ReleaseClaims(model=name, version=version, artifact_digest=digest)
        )
        signed = sign_and_digest(directory, key, "release")
        verify_files(directory, name, version, roots, "release")
        registry.upload_model_files(name, version, [approvals, claims, signed.signature], tracking_uri)
        return SignedVersion(
            model=name,
            version=version,
            level="release",
            artifact_digest=digest,
            signature_sha256=signed.signature_sha256,
        )


def parse_model_uri(uri: str, tracking_uri: str) -> tuple[str, str]:
    """``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` → (name, version)."""
    if not uri.startswith("models:/"):
        raise RegistryError(f"model URI {uri!r} is not models:/NAME/VERSION or models:/NAME@ALIAS")
    rest = uri.removeprefix("models:/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        version = registry.alias_version(name, alias, tracking_uri)
        if version is None:
            raise RegistryError(f"model {name!r} has no alias {alias!r}; see its aliases in MLflow")
        return name, version
    name, _, version = rest.partition("/")
    if not name or not version.isdigit():
        raise RegistryError(f"model URI {uri!r} is not models:/NAME/VERSION (VERSION a number)")
    return name, version
