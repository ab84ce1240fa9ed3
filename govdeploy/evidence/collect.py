"""Gathering the evidence of one version from this deployment: its files verified (release level
when released, candidate otherwise), tags, gate run, signed serving records and audit trail, and
the public keys with their dates that an auditor needs offline (``key_index``): every trusted key of
the signing roles, every audit key, and the approvers' keys that verified the approval statements."""

from __future__ import annotations

import hashlib
from pathlib import Path

from govdeploy.backends import registry, storage
from govdeploy.backends.decision_runs import read_decision_run
from govdeploy.config.approvers import load_approvers
from govdeploy.config.catalog import load_catalog
from govdeploy.config.settings import Settings
from govdeploy.errors import ConfigError, GovdeployError
from govdeploy.evidence.pack import Collected
from govdeploy.trust import serving_records
from govdeploy.trust.anchors import Anchor
from govdeploy.trust.approval_ledger import ApprovalsDocument
from govdeploy.trust.approver_keys import approver_keys, statement_signer
from govdeploy.trust.audit import AuditRecord
from govdeploy.trust.audit_trail import anchors, audit_public_key, records
from govdeploy.trust.key_dates import dates_of
from govdeploy.trust.keys import fingerprint, trusted_keys
from govdeploy.trust.roots import load_roots
from govdeploy.trust.serving_content import ServingRecord, record_digest
from govdeploy.trust.signatures import SIGNATURE_FILES, verify_and_digest
from govdeploy.trust.versions import verified_directory

TAG = registry.TAG
# the evidence files of a version's artifacts (the model's own files are named by the bundles)
EVIDENCE = (
    "govdeploy-identity.json",
    "govdeploy-release.json",
    "approvals.json",
    "candidate.sig",
    "release.sig",
    "reference_profile.json",
)


def _evidence_files(directory: Path) -> dict[str, bytes]:
    found = {name: (directory / name).read_bytes() for name in EVIDENCE if (directory / name).is_file()}
    governance = directory / "governance"
    if governance.is_dir():
        for path in sorted(governance.rglob("*")):
            if path.is_file():
                found[path.relative_to(directory).as_posix()] = path.read_bytes()
    return found


def _transcript(
    settings: Settings, directory: Path, name: str, version: str, level: str
) -> dict[str, object]:
    roots = load_roots(settings)
    levels: dict[str, object] = {}
    for checked in ("candidate", "release") if level == "release" else ("candidate",):
        verified = verify_and_digest(directory, roots.signers(checked), checked, name, version)
        levels[checked] = {
            "bundle": SIGNATURE_FILES[checked],
            "bundle_sha256": verified.signature_sha256,
            "signed_by_key_sha256": fingerprint(verified.signer.read_bytes()),
            "pinned_key_sha256": [fingerprint(p.read_bytes()) for p in roots.signers(checked)],
            "artifact_digest": verified.artifact_digest,
        }
    files = {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }
    return {
        "model": name,
        "version": version,
        "verified_level": level,
        "what": (
            "every file of the version, downloaded from the artifact store, against its model-signing "
            "bundles under the pinned keys of each level; at release level also the approvals it carries "
            "(quorum under the current approver list and policy, not by the submitter)"
        ),
        "levels": levels,
        "files": files,
    }


def _serving(settings: Settings, model: str, version: str) -> tuple[list[bytes], list[ServingRecord]]:
    """The signed serving record documents (every stored version of the key) naming ``version``."""
    client = storage.s3_client(settings)
    keys = trusted_keys(settings, "serving")
    key = serving_records.key_of(model)
    seen: dict[str, tuple[bytes, ServingRecord]] = {}
    for version_id, _ in storage.list_versions(client, settings.bucket, key):
        document = storage.read_object_version(client, settings.bucket, key, version_id)
        try:
            record = serving_records.verify_record(document, keys)
        except GovdeployError:
            continue  # refused records are not evidence; 'govdeploy audit' and the gateway report them
        if record.model == model and version in (record.champion, record.challenger):
            seen.setdefault(record_digest(record), (document, record))
    ordered = sorted(seen.values(), key=lambda item: item[1].sequence)
    return [d for d, _ in ordered], [r for _, r in ordered]


def _audit(settings: Settings, model: str, version: str) -> tuple[list[AuditRecord], list[Anchor]]:
    trail = records(settings)
    first = next((i for i, r in enumerate(trail) if r.model == model and r.version == version), None)
    if first is None:
        return [], []
    chosen = trail[first:]
    wanted = {r.seq: r for r in chosen}
    found: dict[int, Anchor] = {}
    for anchor in anchors(settings).all():
        record = wanted.get(anchor.seq)
        if record is not None and anchor.hash == record.hash and anchor.seq not in found:
            found[anchor.seq] = Anchor(seq=anchor.seq, hash=anchor.hash, time=anchor.time)
    # end at the last anchored record: the pack proves what the bucket anchored
    last = max(found, default=0)
    chosen = [r for r in chosen if r.seq <= last]
    return chosen, [found[s] for s in sorted(found)]


def collect(settings: Settings, name: str, version: str) -> Collected:
    """Everything the pack of ``name`` v``version`` holds, each part verified as it is read."""
    uri = settings.mlflow_url
    tags = registry.version_tags(name, version, uri)
    level = "release" if f"{TAG}release" in tags else "candidate"
    roots = load_roots(settings)
    with verified_directory(name, version, roots=roots, level=level, tracking_uri=uri) as (directory, _):  # type: ignore[arg-type]
        artifacts = _evidence_files(directory)
        transcript = _transcript(settings, directory, name, version, level)
    gate_run = read_decision_run(tags[f"{TAG}gate.run_id"], uri) if f"{TAG}gate.run_id" in tags else None
    drift_run = (
        read_decision_run(tags[f"{TAG}drift.run_id"], uri, "drift/summary.json")
        if f"{TAG}drift.run_id" in tags
        else None
    )
    documents, served = _serving(settings, name, version)
    trail, anchored = _audit(settings, name, version)
    keys, index = key_index(settings, artifacts.get("approvals.json"))
    try:
        catalog = load_catalog(settings.models_path).get(name).model_dump(mode="json")
    except ConfigError:
        catalog = None
    transcript["audit_key_sha256"] = fingerprint(_pem(audit_public_key(settings).key))
    return Collected(
        model=name,
        version=version,
        artifacts=artifacts,
        transcript=transcript,
        tags=tags,
        gate_run=gate_run,
        drift_run=drift_run,
        serving=documents,
        serving_records=served,
        keys=keys,
        key_index=index,
        audit_records=trail,
        anchors=anchored,
        catalog=catalog,
    )


def key_index(settings: Settings, approvals: bytes | None) -> tuple[dict[str, bytes], dict[str, object]]:
    """The trusted keys of the signing roles as files (``<role>-<n>.pub``), and the index of every
    key's dates: those files', every audit key (PEM and dates) and the approvers' keys that verified
    the approval statements of ``approvals`` (an approvals.json)."""
    keys: dict[str, bytes] = {}
    dates: dict[str, object] = {}
    for role in ("candidate", "release", "serving"):
        for i, path in enumerate(trusted_keys(settings, role), start=1):
            keys[f"{role}-{i}.pub"] = path.read_bytes()
            dates[f"{role}-{i}.pub"] = dates_of(path).model_dump(mode="json")
    audit = audit_public_key(settings).keys.as_json()
    return keys, {"files": dates, "audit": audit, "approvers": _approver_keys(settings, approvals)}


def _approver_keys(settings: Settings, approvals: bytes | None) -> dict[str, list[dict[str, object]]]:
    """Approver id → the keys (PEM and dates) under which their statements verify."""
    if not approvals:
        return {}
    try:
        statements = ApprovalsDocument.model_validate_json(approvals).approvals
    except ValueError:
        return {}
    ring = approver_keys(load_approvers(settings.approvers_path), settings.keys_dir)
    found: dict[str, dict[str, dict[str, object]]] = {}
    for signed in statements:
        approver = signed.statement.approver
        try:
            key = statement_signer(
                ring.get(approver, []), signed.statement, signed.signature, signed.statement.issued_at, ""
            )
        except GovdeployError:
            continue  # not counted by the release either; verify reports the statement
        found.setdefault(approver, {})[key.fingerprint] = key.as_json()
    return {approver: list(keys.values()) for approver, keys in found.items()}


def _pem(key: object) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def parse_target(uri: str, tracking_uri: str) -> tuple[str, str]:
    """``models:/NAME/VERSION``, ``models:/NAME@ALIAS`` or ``NAME@ALIAS`` → (name, version)."""
    from govdeploy.trust.versions import parse_model_uri

    if not uri.startswith("models:/"):
        uri = f"models:/{uri}"
    return parse_model_uri(uri, tracking_uri)
