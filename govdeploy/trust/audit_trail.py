"""The audit trail of this deployment: its log file, signing key and bucket anchors.

``verify_trail`` checks the log under the audit public keys pinned in the settings
(``GOVDEPLOY_AUDIT_PUBLIC_KEY``), not under those beside the log, which whoever rewrites the log
can replace as well; each record under the key that could sign at its time, so the chain verifies
across a rotation of the audit key (``govdeploy.trust.audit_keys``). Unpinned, it falls back to the
audit role of ``trust.yaml``, whose ``key_file`` lies beside the log: a warning on the local
emulator, a problem on any endpoint not positively identified as one. The
anchors are checked as the bucket keeps them (``verify_stored``) against the policy's retention,
and the report says plainly when the endpoint is an emulator that enforces no Object Lock.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ValidationError

from govdeploy.backends.storage import s3_client
from govdeploy.config.policy import load_policy
from govdeploy.config.settings import Settings
from govdeploy.errors import AuditError
from govdeploy.trust.anchors import AnchorStore, S3Anchors, check_bucket
from govdeploy.trust.audit import AuditLog, AuditRecord, LocalCopy
from govdeploy.trust.audit_keys import AuditKey as AuditKey
from govdeploy.trust.audit_keys import audit_public_key as audit_public_key
from govdeploy.trust.audit_verify import VerifyReport, read_records, verify_stored
from govdeploy.trust.encryption import Envelope, open_envelope, seal
from govdeploy.trust.keys import load_ed25519_private, master_key, signing_key

DEFAULT_RETENTION_DAYS = 2555
PROBE_PATH = "/moto-api/config"
log = logging.getLogger("govdeploy.audit")

HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp"})  # unicode categories `printable` escapes

EndpointKind = Literal["aws", "emulator", "unknown"]


def anchors(settings: Settings, retention_days: int = DEFAULT_RETENTION_DAYS) -> S3Anchors:
    return S3Anchors(s3_client(settings), settings.bucket, retention_days)


def audit_log(
    settings: Settings, retention_days: int = DEFAULT_RETENTION_DAYS, store: AnchorStore | None = None
) -> AuditLog:
    """The trail's writer: the audit key of the keys directory, once checked to be a key of the audit
    role that may sign now (a retired key signs nothing new: ConfigError); its anchors in ``store``,
    by default the bucket's."""
    key = load_ed25519_private(signing_key(settings, "audit"), "audit signing key")
    master = master_key(settings.keys_dir)
    return AuditLog(
        settings.audit_log_path,
        key,
        store or anchors(settings, retention_days),
        sealer=lambda data, record_id: seal(data, master, record_id).model_dump(),
        keys=audit_public_key(settings).keys,
    )


def unseal(settings: Settings, record: AuditRecord) -> dict[str, Any] | None:
    """The personal data sealed in a record, decrypted with the master key (None if none)."""
    sealed = record.payload.get("sealed")
    if not sealed:
        return None
    try:
        envelope = Envelope.model_validate(sealed)
    except ValidationError as exc:
        raise AuditError(
            f"record {record.seq} ({record.action}) holds no valid sealed envelope: the record was edited; "
            "run 'govdeploy audit verify'"
        ) from exc
    plain = open_envelope(envelope, master_key(settings.keys_dir), record.id)
    data: dict[str, Any] = json.loads(plain)
    return data


def key_findings(key: AuditKey, kind: EndpointKind, state_dir: Path) -> tuple[list[str], list[str]]:
    """(problems, warnings) about the key the records were checked under."""
    if key.pinned and key.path.resolve().is_relative_to(state_dir.resolve()):
        return [], [
            f"the pinned audit public key {key.path} lies in the state directory {state_dir}, beside "
            "the log: whoever rewrites the log can replace it; pin a copy kept elsewhere"
        ]
    if key.pinned:
        return [], []
    unpinned = (
        f"the audit public key is not pinned (GOVDEPLOY_AUDIT_PUBLIC_KEY is unset and trust.yaml names a "
        f"key file): the records were checked under {key.path} beside the log, which whoever rewrites "
        "the log can replace too; pin the key inline (roles.audit public_key in trust.yaml) or set "
        "GOVDEPLOY_AUDIT_PUBLIC_KEY to a copy kept outside the state directory"
    )
    if kind == "emulator":
        return [], [unpinned]
    return [unpinned + " (the development key is accepted on the local emulator only)"], []


class Probe(BaseModel):
    """What the endpoint answered to GET <endpoint>/moto-api/config, a path only moto serves."""

    status: int | None = None  # None: no HTTP answer
    body: str = ""
    error: str = ""


def _json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def classify_endpoint(probe: Probe, server: str) -> EndpointKind:
    """``emulator`` when moto answers its API, ``aws`` only when S3 itself positively answers."""
    moto = probe.status is not None and 200 <= probe.status < 300 and _json_object(probe.body)
    if moto and server != "AmazonS3":
        return "emulator"
    if not moto and probe.status is not None and 300 <= probe.status < 500 and server == "AmazonS3":
        return "aws"
    return "unknown"


def endpoint_warnings(kind: EndpointKind, url: str, probe: Probe, server: str) -> list[str]:
    if kind == "emulator":
        return [
            f"the bucket's endpoint {url} is moto, an S3 emulator that does not enforce Object Lock "
            "(a COMPLIANCE lock can be downgraded and the anchor deleted, retention shortened, "
            "versioning suspended): these anchors prove nothing against whoever can reach it; "
            "use AWS S3 for evidence"
        ]
    if kind == "unknown":
        answer = f"HTTP {probe.status}" if probe.status is not None else f"no answer ({probe.error})"
        return [
            f"could not confirm that the bucket's endpoint {url} is AWS S3 (Server: {server or 'none'}; "
            f"moto probe: {answer}): whether it enforces Object Lock is unknown"
        ]
    return []


def _bucket_problems(client: Any, bucket: str) -> list[str]:
    versioning = client.get_bucket_versioning(Bucket=bucket).get("Status")
    try:
        lock = client.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    except client.exceptions.ClientError:
        lock = {}
    return check_bucket(bucket, versioning, lock.get("ObjectLockEnabled"))


def probe(url: str) -> Probe:
    """Ask the endpoint for moto's configuration (a harmless read; S3 answers it with an error)."""
    try:
        response = httpx.get(url.rstrip("/") + PROBE_PATH, timeout=5.0)
    except httpx.HTTPError as exc:
        return Probe(error=f"{type(exc).__name__}: {exc}")
    return Probe(status=response.status_code, body=response.text[:4096])


def verify_trail(settings: Settings, now: datetime | None = None) -> VerifyReport:
    """Verify the local log under the pinned audit key against the anchors as the bucket keeps them."""
    key = audit_public_key(settings)
    retention = load_policy(settings.policy_path).retention.audit_days
    client = s3_client(settings)
    try:
        stored = S3Anchors(client, settings.bucket, retention).stored()
        bucket_problems = _bucket_problems(client, settings.bucket)
    except Exception as exc:  # botocore's errors; the core does not import botocore
        raise AuditError(
            f"the anchors in bucket {settings.bucket} at {settings.s3_url} could not be read ({exc}); "
            "start the stack ('govdeploy up') or check the bucket and its credentials"
        ) from exc
    report = verify_stored(settings.audit_log_path, key.keys, stored, retention, now)
    answer = probe(settings.s3_url)
    kind = classify_endpoint(answer, stored.server)
    key_problems, key_warnings = key_findings(key, kind, settings.state_dir)
    report.problems = bucket_problems + report.problems + key_problems
    notices = endpoint_warnings(kind, settings.s3_url, answer, stored.server)
    report.warnings = notices + key_warnings + report.warnings
    return report


def records(settings: Settings, model: str | None = None) -> list[AuditRecord]:
    """The records of the shared trail (of ``model``): the local copy, first brought up to date
    with what writers on other machines claimed in the bucket. When the bucket cannot be read, the
    local copy as it is (logged)."""
    try:
        LocalCopy(settings.audit_log_path, audit_public_key(settings).keys, anchors(settings)).sync()
    except Exception as exc:  # botocore's errors, a bad key: reading goes on with the local copy
        log.warning("audit records of other writers not copied in (%s); reading the local copy", exc)
    found = read_records(settings.audit_log_path)
    return [r for r in found if model is None or r.model == model]


def printable(text: str) -> str:
    """``text`` with control, format and line-separator characters shown as escapes (``\\x1b``):
    what a record holds cannot move the cursor, restyle the terminal or reorder what is shown."""
    return "".join(
        ch.encode("unicode_escape").decode() if unicodedata.category(ch) in HIDDEN else ch for ch in text
    )


def show_row(settings: Settings, record: AuditRecord, reveal: bool) -> list[str]:
    """One record as printable cells: seq, time, actor, action, model, policy, details."""
    payload = record.payload
    details = ", ".join(f"{k}={v}" for k, v in payload.items() if k != "sealed" and v is not None)
    if "sealed" in payload:
        details += f", personal data: {unseal(settings, record) if reveal else '(sealed)'}"
    version = f"{record.model} v{record.version}" if record.model else "-"
    cells = [str(record.seq), record.time[:19], record.actor, record.action, version]
    return [printable(cell) for cell in (*cells, (record.policy_digest or "-")[:12], details[:300])]
