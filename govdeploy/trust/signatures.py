"""Signing and verifying model artifact directories (OpenSSF model signing, ECDSA P-256 keys).

A model directory carries two signature bundles beside its files, each by a key of its own role
(``config/trust.yaml``):

- ``candidate.sig``  written when training registers the version: the bytes training produced and
  ``govdeploy-identity.json`` (level ``candidate``, model, version, run, submitter)
- ``release.sig``    written at promotion, after the approvals: it also covers ``approvals.json`` and
  ``govdeploy-release.json`` (level ``release``, model, version, the approved digest)

The level is inside the signed content: a signature verifies at a level only if the claims file of
that level is among the files it covers and says so, so a candidate signature copied to
``release.sig`` is refused even under one key. The claims name the model and version, so a valid
signature of another version is refused. Nothing is deserialised before ``verify_directory`` has
checked every file: a flipped byte, an added, removed or renamed file, a symlink or an unknown
signer is refused with what differs.

Signing and verifying read every file once, streaming (``govdeploy.trust.manifests``): the
manifest of that pass is what gets signed or compared, and the artifact digest comes from its
per-file digests (``sign_and_digest``, ``verify_and_digest``). A bundle's signature is checked
against the trusted keys before any file is hashed, so verifying costs one pass whatever the
number of keys a role trusts.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from pydantic import BaseModel

from govdeploy.errors import SignatureError
from govdeploy.trust import manifests

if TYPE_CHECKING:
    from model_signing import manifest

ClaimsT = TypeVar("ClaimsT", bound=BaseModel)

Level = Literal["candidate", "release"]
IDENTITY_FILE = "govdeploy-identity.json"
RELEASE_FILE = "govdeploy-release.json"
APPROVALS_FILE = "approvals.json"
SIGNATURE_FILES = {"candidate": "candidate.sig", "release": "release.sig"}


class Identity(BaseModel):
    """The candidate's claims: what was trained, by which run, submitted by whom."""

    level: Literal["candidate"] = "candidate"
    model: str
    version: str
    model_id: str
    run_id: str
    submitted_by: str
    submission_proven: bool  # a signed submission by that person (else a claimed name)


class ReleaseClaims(BaseModel):
    """The release's claims: which version, with which approved artifact digest."""

    level: Literal["release"] = "release"
    model: str
    version: str
    artifact_digest: str


@dataclass(frozen=True)
class SignedDirectory:
    """A directory just signed: its bundle and the artifact digest of the bytes signed."""

    signature: Path
    signature_sha256: str
    artifact_digest: str  # of the files a candidate signature covers, whatever the level signed


@dataclass(frozen=True)
class VerifiedDirectory:
    """A directory whose every file verified: the bundle, the artifact digest, the key that signed."""

    signature_sha256: str
    artifact_digest: str  # of the files a candidate signature covers, whatever the level verified
    signer: Path


def _ignored(model_dir: Path, level: Level) -> list[Path]:
    names = list(SIGNATURE_FILES.values())
    if level == "candidate":
        names += [APPROVALS_FILE, RELEASE_FILE]
    return [model_dir / name for name in names]


def _hash(model_dir: Path, level: Level) -> manifest.Manifest:
    """The manifest of the files a ``level`` signature covers, in one pass."""
    return manifests.hash_directory(model_dir, _ignored(model_dir, level))


def _candidate_digest(found: manifest.Manifest, model_dir: Path) -> str:
    """The artifact digest (candidate files) of a manifest made at either level."""
    return manifests.artifact_digest_of(found, excluded={p.name for p in _ignored(model_dir, "candidate")})


def write_identity(model_dir: Path, identity: Identity) -> Path:
    path = model_dir / IDENTITY_FILE
    path.write_text(identity.model_dump_json(indent=2))
    return path


def write_release_claims(model_dir: Path, claims: ReleaseClaims) -> Path:
    path = model_dir / RELEASE_FILE
    path.write_text(claims.model_dump_json(indent=2))
    return path


def read_identity(model_dir: Path) -> Identity:
    """The candidate claims of a verified directory."""
    return _claims(model_dir, IDENTITY_FILE, Identity)


def read_release_claims(model_dir: Path) -> ReleaseClaims:
    """The release claims of a verified directory."""
    return _claims(model_dir, RELEASE_FILE, ReleaseClaims)


def _claims(model_dir: Path, name: str, model: type[ClaimsT]) -> ClaimsT:
    try:
        return model.model_validate(json.loads((model_dir / name).read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SignatureError(f"{name} is missing or not {model.__name__} claims ({reason})") from None


def artifact_digest(model_dir: Path, level: Level = "candidate") -> str:
    """SHA-256 over the sorted (path, file SHA-256) pairs of the files a ``level`` signature covers,
    in one streaming pass. ``sign_and_digest`` and ``verify_and_digest`` give the candidate one
    without a pass of its own."""
    _refuse_links(model_dir)
    return manifests.artifact_digest_of(_hash(model_dir, level))


def sign_and_digest(model_dir: Path, private_key: Path, level: Level) -> SignedDirectory:
    """Sign every file of ``model_dir`` (but the signature bundles) into ``<level>.sig``, reading each
    file once; the artifact digest comes from the same pass."""
    signature = model_dir / SIGNATURE_FILES[level]
    _refuse_links(model_dir)
    found = _hash(model_dir, level)
    bundle = manifests.sign_manifest(found, private_key).encode("utf-8")
    signature.write_bytes(bundle)
    return SignedDirectory(signature, hashlib.sha256(bundle).hexdigest(), _candidate_digest(found, model_dir))


def sign_directory(model_dir: Path, private_key: Path, level: Level) -> Path:
    """Sign every file of ``model_dir`` (but the signature bundles) into ``<level>.sig``."""
    return sign_and_digest(model_dir, private_key, level).signature


def _refuse_links(model_dir: Path) -> None:
    for root, dirs, files in os.walk(model_dir):
        for name in dirs + files:
            path = Path(root) / name
            if path.is_symlink():
                raise SignatureError(
                    f"{path.relative_to(model_dir)} is a symlink; a model directory holds regular files only"
                )


def verify_directory(
    model_dir: Path, trusted_keys: list[Path], level: Level, model: str, version: str
) -> str:
    """Verify every file against the ``level`` signature from one of ``trusted_keys``.

    Returns the SHA-256 of the signature bundle. Raises SignatureError with what differs.
    """
    return verify_and_digest(model_dir, trusted_keys, level, model, version).signature_sha256


def verify_and_digest(
    model_dir: Path, trusted_keys: list[Path], level: Level, model: str, version: str
) -> VerifiedDirectory:
    """Verify every file against the ``level`` signature from one of ``trusted_keys``, reading each
    file once: the bundle's signature is checked against the keys first, then the directory is
    hashed and compared with the signed manifest. SignatureError with what differs."""
    subject, signature = f"{model} v{version}", model_dir / SIGNATURE_FILES[level]
    if not signature.is_file():
        raise SignatureError(f"{subject} has no {signature.name}; it was never signed at {level} level")
    _refuse_links(model_dir)
    if not trusted_keys:
        raise SignatureError(
            f"no trusted {level} key is configured; add one under roles.{level} in trust.yaml"
        )
    refused = f"{subject} does not verify against its {signature.name}"
    bundle = signature.read_bytes()
    try:
        signed, signer = manifests.signed_manifest(signature, trusted_keys)
    except SignatureError as exc:
        raise SignatureError(f"{refused}: {exc}") from None
    _check_level(signed, signature.name, model_dir, level, subject)
    found = _hash(model_dir, level)
    if found != signed:
        differences = manifests.differences(found, signed) or ["the manifests differ"]
        raise SignatureError(f"{refused} (signed by {signer.name}): " + "; ".join(differences))
    _check_claims(model_dir, level, model, version)
    return VerifiedDirectory(hashlib.sha256(bundle).hexdigest(), _candidate_digest(found, model_dir), signer)


def _check_level(signed: manifest.Manifest, name: str, model_dir: Path, level: Level, subject: str) -> None:
    """The verified statement was made for ``level``: it ignores exactly that level's ignore list and
    covers that level's claims. (The ignore list is inside the signed statement, so a candidate
    signature copied to ``release.sig`` would otherwise verify at release level.)"""
    ignored = manifests.signed_ignore_paths(signed)
    covered = set(manifests.file_digests(signed))
    expected = {p.name for p in _ignored(model_dir, level)}
    needed = {IDENTITY_FILE} | ({RELEASE_FILE, APPROVALS_FILE} if level == "release" else set())
    if ignored != expected or not needed <= covered:
        raise SignatureError(
            f"{subject}: {name} was not made at {level} level (it ignores {sorted(ignored)} and "
            f"covers {sorted(needed & covered)} of the {level} claims {sorted(needed)})"
        )


def _check_claims(model_dir: Path, level: Level, model: str, version: str) -> None:
    """The signed claims of ``level`` name this model and version (and the level itself)."""
    try:
        identity = read_identity(model_dir)
        claims: Identity | ReleaseClaims = (
            identity if level == "candidate" else read_release_claims(model_dir)
        )
    except SignatureError as exc:
        raise SignatureError(f"{model} v{version} at {level} level: {exc}") from None
    for named in (identity, claims):
        if (named.model, named.version) != (model, version):
            raise SignatureError(
                f"the signature is valid for {named.model} v{named.version}, not for {model} v{version}: "
                "these artifacts belong to another version"
            )
