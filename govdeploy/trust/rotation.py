"""Rotating a role's development signing key, and which keys are due for rotation.

``rotate`` (``govdeploy keys rotate --role ROLE``) replaces the role's key in the keys directory
and in ``trust.yaml`` at one moment T, a whole second:

- a new ECDSA P-256 pair takes the old one's place (``<role>.key``, and the entry's key file): from T
  on every signature of the role is made with it; its trust.yaml entry gets ``valid_from: T``;
- the old public key stays pinned, written inline into its entry with ``retired_at: T``: it keeps
  verifying what it signed before T and signs nothing new (``keys.signing_key`` refuses it); its
  private key is deleted;
- an audit record ``key.rotated`` names the role, both fingerprints and T. If it cannot be written
  (the bucket of the anchors is out of reach), the files are put back as they were and nothing
  rotated.

Rotated roles: ``candidate``, ``release``, ``serving`` (ECDSA P-256) and ``audit`` (Ed25519). The
audit trail verifies each record under the audit key that could sign at its time
(``govdeploy.trust.audit_keys``), so the chain verifies across the rotation; the ``key.rotated``
record of an audit rotation is the first one signed with the new key. Where the audit keys are
pinned with ``GOVDEPLOY_AUDIT_PUBLIC_KEY``, append the new public key to that file. Approvers' keys
are personal and live in ``approvers.yaml``: ``govdeploy.trust.approver_rotation``. A role whose
private key comes from a secret store (``GOVDEPLOY_<ROLE>_KEY``) is rotated there (SECURITY.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from govdeploy.config.files import read_text
from govdeploy.config.policy import load_policy
from govdeploy.config.settings import Settings
from govdeploy.config.trust import (
    DueKey,
    Role,
    TrustConfig,
    TrustedKey,
    dump_trust,
    header_of,
    keys_due,
    load_trust,
)
from govdeploy.errors import AuditError, ConfigError
from govdeploy.trust.audit import AuditLog
from govdeploy.trust.keys import (
    PrivateKey,
    entry_pem,
    fingerprint,
    load_ecdsa_private,
    load_ed25519_private,
    pem_private,
    pem_public,
)

ROTATED: tuple[Role, ...] = ("candidate", "release", "serving", "audit")
ACTION = "key.rotated"


@dataclass(frozen=True)
class Rotation:
    role: Role | Literal["approver"]
    retired: str  # fingerprint of the retired key
    current: str  # fingerprint of the new key
    at: datetime  # retired_at of the old key, valid_from of the new one
    audit_seq: int
    approver: str | None = None  # the approver whose key rotated (role approver)


def _refuse(settings: Settings, role: Role) -> None:
    if role not in ROTATED:
        raise ConfigError(f"role {role!r} is not one of {', '.join(ROTATED)}")
    secret = {"candidate": settings.candidate_key, "release": settings.release_key}.get(role)
    if secret or (role == "serving" and settings.serving_key):
        raise ConfigError(
            f"the {role} key comes from GOVDEPLOY_{role.upper()}_KEY (a secret store), not from "
            f"{settings.keys_dir}: rotate it there, then add its public key to trust.yaml (SECURITY.md)"
        )


def whole_second(at: datetime | None) -> datetime:
    """T: ``at``, else the next whole second, waited for (statements carry whole seconds)."""
    if at is not None:
        return at
    now = datetime.now(UTC)
    moment = now.replace(microsecond=0) + timedelta(seconds=1)
    time.sleep((moment - now).total_seconds())
    return moment


def _current_entry(trust: TrustConfig, settings: Settings, role: Role, mine: str, at: datetime) -> int:
    for index, entry in enumerate(trust.roles[role]):
        if entry.signs_at(at) and fingerprint(entry_pem(entry, settings.keys_dir, role)) == mine:
            return index
    raise ConfigError(
        f"the development {role} key {settings.keys_dir / f'{role}.key'} (sha256 {mine[:16]}) is not a "
        f"current {role} key of {settings.trust_path}; pin it there before rotating it"
    )


def _rotated(
    trust: TrustConfig, role: Role, index: int, old_pem: bytes, new_pem: bytes, at: datetime
) -> TrustConfig:
    old = trust.roles[role][index]
    new = TrustedKey(
        key_file=old.key_file, public_key=None if old.key_file else new_pem.decode(), valid_from=at
    )
    retired = old.model_copy(update={"key_file": None, "public_key": old_pem.decode(), "retired_at": at})
    TrustedKey.model_validate(retired.model_dump())  # the dates still in order
    keys = [*trust.roles[role][:index], new, retired, *trust.roles[role][index + 1 :]]
    return TrustConfig.model_validate({**trust.model_dump(), "roles": {**trust.roles, role: keys}})


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` atomically with ``data`` (created with ``mode``)."""
    partial = path.with_name(path.name + ".rotating")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(path)


def file_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777 if path.exists() else 0o644


def restore(saved: dict[Path, tuple[bytes | None, int]]) -> None:
    for path, (data, mode) in saved.items():
        if data is None:
            path.unlink(missing_ok=True)
        else:
            write_atomic(path, data, mode)


def _private(role: Role, path: Path) -> PrivateKey:
    if role == "audit":
        return load_ed25519_private(path, "development audit key")
    return load_ecdsa_private(path, f"development {role} key")


def _generate(role: Role) -> PrivateKey:
    return (
        ed25519.Ed25519PrivateKey.generate() if role == "audit" else ec.generate_private_key(ec.SECP256R1())
    )


def _recorder(audit: AuditLog, old: PrivateKey, new: PrivateKey, at: datetime) -> AuditLog:
    """The writer of the rotation's record: ``audit``, but for the audit role the new key (from T on
    the old one signs nothing), checking claims under the audit keys as they are after T."""
    if not isinstance(new, ed25519.Ed25519PrivateKey) or not isinstance(old, ed25519.Ed25519PrivateKey):
        return audit
    keys = audit.keys.rotated(old.public_key(), new.public_key(), at)
    return AuditLog(audit.path, new, audit.anchors, audit.sealer, keys)


def rotate(settings: Settings, role: Role, audit: AuditLog, at: datetime | None = None) -> Rotation:
    """Rotate the development key of ``role`` at T (``at``, else the next whole second): see the module
    docstring. ConfigError when the role or its key cannot be rotated here; AuditError (nothing
    rotated) when the audit record cannot be written."""
    _refuse(settings, role)
    private_path = settings.keys_dir / f"{role}.key"
    old_key = _private(role, private_path)
    old_pem = pem_public(old_key)
    trust_text = read_text(settings.trust_path, "trusted keys")
    trust = load_trust(settings.trust_path)
    moment = whole_second(at)
    index = _current_entry(trust, settings, role, fingerprint(old_pem), moment)
    new_key = _generate(role)
    new_pem = pem_public(new_key)
    rotated = _rotated(trust, role, index, old_pem, new_pem, moment)
    key_file = trust.roles[role][index].key_file
    changes = {private_path: (pem_private(new_key), 0o600)}
    if key_file is not None:
        changes[settings.keys_dir / key_file] = (new_pem, file_mode(settings.keys_dir / key_file))
    changes[settings.trust_path] = (
        dump_trust(rotated, header_of(trust_text)).encode(),
        file_mode(settings.trust_path),
    )
    saved = {p: (p.read_bytes() if p.exists() else None, mode) for p, (_, mode) in changes.items()}
    for path, (data, mode) in changes.items():
        write_atomic(path, data, mode)
    retired, current = fingerprint(old_pem), fingerprint(new_pem)
    try:
        record = _recorder(audit, old_key, new_key, moment).append(
            ACTION,
            settings.user,
            {"role": role, "retired_key": retired, "new_key": current, "at": moment.isoformat()},
        )
    except Exception as exc:  # the anchors' bucket (botocore's errors), the log file
        restore(saved)
        raise AuditError(
            f"the {role} key was not rotated: its audit record could not be written ({exc}); start the "
            "stack ('govdeploy up') and rotate again"
        ) from exc
    return Rotation(role, retired, current, moment, record.seq)


def _created(settings: Settings) -> Callable[[TrustedKey], datetime | None]:
    def created(key: TrustedKey) -> datetime | None:
        if key.key_file is None:
            return None
        path = settings.keys_dir / key.key_file
        return datetime.fromtimestamp(path.stat().st_mtime, UTC) if path.exists() else None

    return created


def rotation_due(settings: Settings, now: datetime | None = None) -> list[DueKey]:
    """The keys of ``trust.yaml`` that sign now and are at least the policy's ``keys.rotation_days``
    old: from ``valid_from``, else (a development key) from its key file's time; an inline key
    without ``valid_from`` is of unknown age, so due."""
    days = load_policy(settings.policy_path).signing_keys.rotation_days
    trust = load_trust(settings.trust_path)
    return keys_due(trust, now or datetime.now(UTC), days, _created(settings))
