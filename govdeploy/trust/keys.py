"""Development keys in the state directory, and loading keys from PEM files.

``init_keys`` creates, once, in ``<state>/keys/`` (directory 0700, private files 0600):

- ``candidate.key`` / ``.pub``       ECDSA P-256: training signs the files it produced
- ``release.key`` / ``.pub``         ECDSA P-256: promotion signs approved bytes and approvals
- ``serving.key`` / ``.pub``         ECDSA P-256: rollout signs serving records
- ``audit.key`` / ``audit.pub``      Ed25519: signs audit records
- ``master.key``                     AES-256: wraps the data keys of encrypted objects
- ``approvers/<id>.key`` / ``.pub``  Ed25519: one pair per demo approver

``init_api_keys`` creates ``api/<id>.key`` (a random gateway API key, 0600) and ``api/<id>.sha256``
(its SHA-256 hex digest, the only form the gateway configuration refers to) per principal.

In production the private keys come from a secret store and only public keys are configured
(``config/trust.yaml``, read by ``trusted_keys``); private keys are never committed and never
logged.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import tempfile
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from govdeploy.config.settings import Settings
from govdeploy.config.trust import DATES, Role, TrustedKey, load_trust
from govdeploy.errors import ConfigError
from govdeploy.trust.key_dates import PinnedKey

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def pem_private(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def pem_public(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _create_pair(private_path: Path, key: PrivateKey) -> bool:
    if private_path.exists():
        return False
    _write_private(private_path, pem_private(key))
    private_path.with_suffix(".pub").write_bytes(pem_public(key))
    return True


SIGNING_ROLES: tuple[Role, ...] = ("candidate", "release", "serving")


def init_keys(keys_dir: Path, approver_ids: list[str]) -> list[str]:
    """Create the missing development keys; return the names of those created."""
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(keys_dir, 0o700)
    created = []
    for role in SIGNING_ROLES:
        if _create_pair(keys_dir / f"{role}.key", ec.generate_private_key(ec.SECP256R1())):
            created.append(f"{role}.key")
    if _create_pair(keys_dir / "audit.key", ed25519.Ed25519PrivateKey.generate()):
        created.append("audit.key")
    if not (keys_dir / "master.key").exists():
        _write_private(keys_dir / "master.key", os.urandom(32).hex().encode())
        created.append("master.key")
    for approver in approver_ids:
        if _create_pair(keys_dir / "approvers" / f"{approver}.key", ed25519.Ed25519PrivateKey.generate()):
            created.append(f"approvers/{approver}.key")
    return created


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{what} {path} does not exist; create development keys with 'govdeploy keys init'"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc}") from exc


def load_ed25519_private(path: Path, what: str = "private key") -> ed25519.Ed25519PrivateKey:
    key = _load_private(path, what)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError(f"{what} {path} is not an Ed25519 key; approvals and audit records use Ed25519")
    return key


def _load_private(path: Path, what: str) -> object:
    try:
        return serialization.load_pem_private_key(_read(path, what), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what} {path} is not an unencrypted PEM private key: {exc}") from None


def load_ecdsa_private(path: Path, what: str = "model signing key") -> ec.EllipticCurvePrivateKey:
    key = _load_private(path, what)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{what} {path} is not an ECDSA key; model signatures use ECDSA P-256")
    return key


def load_ecdsa_public(path: Path, what: str = "trusted signing key") -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(_read(path, what))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{what} {path} is not a PEM public key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigError(f"{what} {path} is not an ECDSA public key; model signatures use ECDSA P-256")
    return key


def load_ed25519_public(data: bytes, where: str) -> ed25519.Ed25519PublicKey:
    """An Ed25519 public key from PEM bytes."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: not a PEM public key: {exc}") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ConfigError(f"{where}: not an Ed25519 public key")
    return key


def read_public(path: Path, what: str = "public key") -> bytes:
    return _read(path, what)


def master_key(keys_dir: Path) -> bytes:
    """The AES-256 master key (hex in ``master.key``)."""
    raw = _read(keys_dir / "master.key", "master key").strip()
    try:
        key = bytes.fromhex(raw.decode())
    except ValueError:
        raise ConfigError(f"master key {keys_dir / 'master.key'} is not hex") from None
    if len(key) != 32:
        raise ConfigError(f"master key {keys_dir / 'master.key'} has {len(key)} bytes; AES-256 needs 32")
    return key


_API_PRINCIPAL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def init_api_keys(keys_dir: Path, principal_ids: list[str]) -> list[str]:
    """Create a random gateway API key and its SHA-256 digest file per principal that lacks one.

    Return the names of the key files created ("api/<id>.key"); existing keys are kept.
    """
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    created = []
    for principal in principal_ids:
        if not _API_PRINCIPAL_ID.fullmatch(principal):
            raise ConfigError(
                f"API principal id {principal!r} is not a valid file name; "
                "use letters, digits, '.', '_' and '-', starting with a letter or digit"
            )
        key_path = keys_dir / "api" / f"{principal}.key"
        if key_path.exists():
            continue
        api_key = "gd_" + secrets.token_urlsafe(32)
        _write_private(key_path, api_key.encode())
        digest = hashlib.sha256(api_key.encode()).hexdigest()
        (keys_dir / "api" / f"{principal}.sha256").write_text(digest + "\n", encoding="utf-8")
        created.append(f"api/{principal}.key")
    return created


def signing_key(settings: Settings, role: Role) -> Path:
    """The private key this process signs ``role`` statements with (a mounted secret, or the
    development key in the keys directory), once checked to be a key the role may sign with now:
    its public key pinned in ``trust.yaml`` and neither retired nor outside its dates. ConfigError
    otherwise (a retired key signs nothing new)."""
    given = {
        "candidate": settings.candidate_key,
        "release": settings.release_key,
        "serving": settings.serving_key,
    }
    path = given.get(role) or settings.keys_dir / f"{role}.key"
    _may_sign(settings, role, path)
    return path


def fingerprint(pem: bytes) -> str:
    """SHA-256 (hex) of a PEM public key's DER encoding: how records and messages name a key."""
    key = serialization.load_pem_public_key(pem)
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def entry_pem(entry: TrustedKey, keys_dir: Path, role: Role) -> bytes:
    """The PEM public key of a ``trust.yaml`` entry (its key file, or the inline PEM)."""
    if entry.public_key is not None:
        return entry.public_key.encode()
    return _read(keys_dir / str(entry.key_file), f"trusted {role} key")


def _may_sign(settings: Settings, role: Role, path: Path) -> None:
    private = _load_private(path, f"{role} signing key")
    if not isinstance(private, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{role} signing key {path} is neither an ECDSA nor an Ed25519 key")
    mine = fingerprint(pem_public(private))
    now = datetime.now(UTC)
    entries = [
        e for e in load_trust(settings.trust_path).roles[role] if _pinned(e, settings.keys_dir, role) == mine
    ]
    if any(entry.signs_at(now) for entry in entries):
        return
    if not entries:
        raise ConfigError(
            f"the {role} signing key {path} (sha256 {mine[:16]}) is not a trusted {role} key of "
            f"{settings.trust_path}; sign with the role's current key, or pin this one under roles.{role}"
        )
    dates = "; ".join(
        ", ".join(f"{name} {getattr(e, name).isoformat()}" for name in DATES if getattr(e, name))
        for e in entries
    )
    raise ConfigError(
        f"the {role} signing key {path} (sha256 {mine[:16]}) may not sign now ({dates} in "
        f"{settings.trust_path}): a retired key signs nothing new; sign with the role's current key"
    )


def _pinned(entry: TrustedKey, keys_dir: Path, role: Role) -> str | None:
    """The fingerprint of an entry's key; None when its file is missing or is no public key."""
    try:
        return fingerprint(entry_pem(entry, keys_dir, role))
    except (ConfigError, ValueError, TypeError):
        return None


def trusted_keys(settings: Settings, role: Role, signed_at: datetime | None = None) -> list[Path]:
    """PEM files of the ``role`` keys pinned in ``trust.yaml`` that a signature may verify under now,
    each checked to be a key of the role's algorithm; ConfigError (fail closed) when the role has no
    key that may sign now, or one is unusable.

    Retired keys are included, after the current ones: they keep verifying what they signed. With
    ``signed_at`` (material that carries a signed time: serving records, audit records) only the
    keys that could sign at that time. Each is a ``PinnedKey``: a path that carries its dates, so
    that what carries a signed time (``serving_records.verify_record``) is checked against them."""
    trust = load_trust(settings.trust_path)
    trust.keys(role)
    found: list[Path] = []
    for entry in trust.verifying(role, signed_at=signed_at):
        what = f"trusted {role} key"
        path = settings.keys_dir / entry.key_file if entry.key_file else _inline_pem(entry.public_key or "")
        if role == "audit":
            load_ed25519_public(_read(path, what), str(path))
        else:
            load_ecdsa_public(path, what)
        found.append(PinnedKey.of(path, entry.dates()))
    return found


@lru_cache(maxsize=1)
def _inline_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="govdeploy-trusted-"))


def _inline_pem(pem: str) -> Path:
    """An inline PEM of trust.yaml as a file (model signing reads keys from files), once per process."""
    path = _inline_dir() / f"{hashlib.sha256(pem.encode()).hexdigest()[:32]}.pub"
    if not path.exists():
        path.write_text(pem)
    return path
