"""The audit trail of this deployment: its log file, signing key and bucket anchors."""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from govdeploy.backends.storage import s3_client
from govdeploy.config.settings import Settings
from govdeploy.trust.audit import AuditLog, AuditRecord, S3Anchors, VerifyReport, read_records, verify
from govdeploy.trust.encryption import Envelope, open_envelope, seal
from govdeploy.trust.keys import load_ed25519_private, load_ed25519_public, master_key, read_public

DEFAULT_RETENTION_DAYS = 2555


def anchors(settings: Settings, retention_days: int = DEFAULT_RETENTION_DAYS) -> S3Anchors:
    return S3Anchors(s3_client(settings), settings.bucket, retention_days)


def audit_log(settings: Settings, retention_days: int = DEFAULT_RETENTION_DAYS) -> AuditLog:
    key = load_ed25519_private(settings.keys_dir / "audit.key", "audit signing key")
    master = master_key(settings.keys_dir)
    return AuditLog(
        settings.audit_log_path,
        key,
        anchors(settings, retention_days),
        sealer=lambda data, record_id: seal(data, master, record_id).model_dump(),
    )


def unseal(settings: Settings, record: AuditRecord) -> dict[str, Any] | None:
    """The personal data sealed in a record, decrypted with the master key (None if none)."""
    sealed = record.payload.get("sealed")
    if not sealed:
        return None
    plain = open_envelope(Envelope.model_validate(sealed), master_key(settings.keys_dir), record.id)
    data: dict[str, Any] = json.loads(plain)
    return data


def audit_public_key(settings: Settings) -> ed25519.Ed25519PublicKey:
    path = settings.keys_dir / "audit.pub"
    return load_ed25519_public(read_public(path, "audit public key"), str(path))


def verify_trail(settings: Settings) -> VerifyReport:
    """Verify the local log against the audit key and the anchors in the bucket."""
    return verify(settings.audit_log_path, audit_public_key(settings), anchors(settings).all())


def records(settings: Settings, model: str | None = None) -> list[AuditRecord]:
    found = read_records(settings.audit_log_path)
    return [r for r in found if model is None or r.model == model]
