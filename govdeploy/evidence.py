"""The audit trail of this deployment: its log file, signing key and bucket anchors."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ed25519

from govdeploy.audit import AuditLog, AuditRecord, S3Anchors, VerifyReport, read_records, verify
from govdeploy.keys import load_ed25519_private, load_ed25519_public, read_public
from govdeploy.settings import Settings
from govdeploy.storage import s3_client

DEFAULT_RETENTION_DAYS = 2555


def anchors(settings: Settings, retention_days: int = DEFAULT_RETENTION_DAYS) -> S3Anchors:
    return S3Anchors(s3_client(settings), settings.bucket, retention_days)


def audit_log(settings: Settings, retention_days: int = DEFAULT_RETENTION_DAYS) -> AuditLog:
    key = load_ed25519_private(settings.keys_dir / "audit.key", "audit signing key")
    return AuditLog(settings.audit_log_path, key, anchors(settings, retention_days))


def audit_public_key(settings: Settings) -> ed25519.Ed25519PublicKey:
    path = settings.keys_dir / "audit.pub"
    return load_ed25519_public(read_public(path, "audit public key"), str(path))


def verify_trail(settings: Settings) -> VerifyReport:
    """Verify the local log against the audit key and the anchors in the bucket."""
    return verify(settings.audit_log_path, audit_public_key(settings), anchors(settings).all())


def records(settings: Settings, model: str | None = None) -> list[AuditRecord]:
    found = read_records(settings.audit_log_path)
    return [r for r in found if model is None or r.model == model]
