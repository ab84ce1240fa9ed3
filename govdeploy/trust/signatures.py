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
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel

from govdeploy.errors import SignatureError

if TYPE_CHECKING:
    from model_signing import hashing

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


def _ignored(model_dir: Path, level: Level) -> list[Path]:
    names = list(SIGNATURE_FILES.values())
    if level == "candidate":
        names += [APPROVALS_FILE, RELEASE_FILE]
    return [model_dir / name for name in names]


def _hashing_config(model_dir: Path, level: Level) -> hashing.Config:
    from model_signing import hashing

    return hashing.Config().set_ignored_paths(paths=_ignored(model_dir, level), ignore_git_paths=False)


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
    """SHA-256 over the sorted (path, file SHA-256) pairs of the files a signature covers."""
    ignored = {p.name for p in _ignored(model_dir, level)}
    entries = []
    for path in sorted(model_dir.rglob("*")):
        relative = path.relative_to(model_dir).as_posix()
        if path.is_file() and relative not in ignored:
            entries.append(f"{relative}\0{hashlib.sha256(path.read_bytes()).hexdigest()}")
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def sign_directory(model_dir: Path, private_key: Path, level: Level) -> Path:
    """Sign every file of ``model_dir`` (but the signature bundles) into ``<level>.sig``."""
    from model_signing import signing

    signature = model_dir / SIGNATURE_FILES[level]
    _refuse_links(model_dir)
    signing.Config().use_elliptic_key_signer(private_key=str(private_key)).set_hashing_config(
        _hashing_config(model_dir, level)
    ).sign(model_dir, signature)
    return signature


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
    from model_signing import verifying

    signature = model_dir / SIGNATURE_FILES[level]
    if not signature.is_file():
        raise SignatureError(
            f"{model} v{version} has no {signature.name}; it was never signed at {level} level"
        )
    _refuse_links(model_dir)
    if not trusted_keys:
        raise SignatureError(
            f"no trusted {level} key is configured; add one under roles.{level} in trust.yaml"
        )
    reasons = []
    for key in trusted_keys:
        try:
            verifying.Config().use_elliptic_key_verifier(public_key=str(key)).set_hashing_config(
                _hashing_config(model_dir, level)
            ).verify(model_dir, signature)
        except Exception as exc:  # model signing raises more than ValueError on a malformed bundle
            reasons.append(f"{key.name}: {type(exc).__name__}: {exc}")
            continue
        _check_level(signature, model_dir, level, f"{model} v{version}")
        _check_claims(model_dir, level, model, version)
        return hashlib.sha256(signature.read_bytes()).hexdigest()
    raise SignatureError(
        f"{model} v{version} does not verify against its {signature.name}: " + "; ".join(reasons)
    )


def _signed_statement(signature: Path) -> dict[str, Any]:
    """The in-toto statement inside a (verified) model-signing bundle."""
    bundle = json.loads(signature.read_text(encoding="utf-8"))
    statement: dict[str, Any] = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    return statement


def _check_level(signature: Path, model_dir: Path, level: Level, subject: str) -> None:
    """The verified statement was made for ``level``: it ignores exactly that level's ignore list and
    covers that level's claims. (Model signing honours the ignore list recorded in the signature, so
    a candidate signature copied to ``release.sig`` would otherwise verify at release level.)"""
    try:
        predicate = _signed_statement(signature)["predicate"]
        ignored = set(predicate["serialization"]["ignore_paths"])
        covered = {resource["name"] for resource in predicate["resources"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SignatureError(f"{subject}: {signature.name} is not a model-signing bundle ({exc})") from None
    expected = {p.name for p in _ignored(model_dir, level)}
    needed = {IDENTITY_FILE} | ({RELEASE_FILE, APPROVALS_FILE} if level == "release" else set())
    if ignored != expected or not needed <= covered:
        raise SignatureError(
            f"{subject}: {signature.name} was not made at {level} level (it ignores {sorted(ignored)} and "
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
