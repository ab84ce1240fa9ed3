"""Signing and verifying model artifact directories (OpenSSF model signing, ECDSA P-256 keys).

A model directory carries two signature bundles beside its files:

- ``candidate.sig``  written when training registers the version: the bytes training produced
- ``release.sig``    written at promotion, after the approvals: it also covers ``approvals.json``

Both cover ``govdeploy-identity.json``, which names the model and version, so a valid signature
of another version is refused. Nothing is deserialised before ``verify_directory`` has checked
every file: a flipped byte, an added, removed or renamed file, a symlink or an unknown signer is
refused with what differs.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from govdeploy.errors import SignatureError

if TYPE_CHECKING:
    from model_signing import hashing

Level = Literal["candidate", "release"]
IDENTITY_FILE = "govdeploy-identity.json"
APPROVALS_FILE = "approvals.json"
SIGNATURE_FILES = {"candidate": "candidate.sig", "release": "release.sig"}


class Identity(BaseModel):
    model: str
    version: str
    model_id: str
    run_id: str


def _ignored(model_dir: Path, level: Level) -> list[Path]:
    names = list(SIGNATURE_FILES.values()) + ([APPROVALS_FILE] if level == "candidate" else [])
    return [model_dir / name for name in names]


def _hashing_config(model_dir: Path, level: Level) -> hashing.Config:
    from model_signing import hashing

    return hashing.Config().set_ignored_paths(paths=_ignored(model_dir, level), ignore_git_paths=False)


def write_identity(model_dir: Path, identity: Identity) -> Path:
    path = model_dir / IDENTITY_FILE
    path.write_text(identity.model_dump_json(indent=2))
    return path


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
        raise SignatureError("no trusted signing keys are configured; set GOVDEPLOY_TRUSTED_KEYS")
    reasons = []
    for key in trusted_keys:
        try:
            verifying.Config().use_elliptic_key_verifier(public_key=str(key)).set_hashing_config(
                _hashing_config(model_dir, level)
            ).verify(model_dir, signature)
        except ValueError as exc:
            reasons.append(f"{key.name}: {exc}")
            continue
        _check_identity(model_dir, model, version)
        return hashlib.sha256(signature.read_bytes()).hexdigest()
    raise SignatureError(
        f"{model} v{version} does not verify against its {signature.name}: " + "; ".join(reasons)
    )


def _check_identity(model_dir: Path, model: str, version: str) -> None:
    try:
        identity = Identity.model_validate(json.loads((model_dir / IDENTITY_FILE).read_text()))
    except (OSError, ValueError) as exc:
        raise SignatureError(
            f"{model} v{version}: {IDENTITY_FILE} is missing or unreadable ({exc})"
        ) from None
    if (identity.model, identity.version) != (model, version):
        raise SignatureError(
            f"the signature is valid for {identity.model} v{identity.version}, not for {model} v{version}: "
            "these artifacts belong to another version"
        )
