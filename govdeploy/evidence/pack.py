"""Writing an evidence pack: what was collected about one version, as files, a report and a signed
manifest.

Layout of a pack (every file listed with its SHA-256 in ``manifest.json``, signed in
``manifest.sig`` with the deployment's audit key, Ed25519; the public key is in the manifest and in
``keys/audit.pub``):

- ``artifacts/``: the version's evidence files as verified (claims, approvals, model-signing bundles
  ``candidate.sig``/``release.sig``, ``governance/``); the model's own files are not copied, the
  bundles name their digests;
- ``verification.json``: the verification transcript (levels, key fingerprints, digests);
- ``registry/version.json``, ``gate/``: the version's tags and its gate decision run;
- ``approvals/statements.json``: the signed approval statements the release carries;
- ``serving/records/``: the signed serving records naming the version, ``serving/periods.json``;
- ``audit/records.jsonl`` (the trail from the version's first record on) and ``audit/anchors.json``;
- ``keys/``: the public keys the signatures verify under, and ``keys/trusted.json``: the dates of
  each (``files``), every audit key with its dates (``audit``) and the approvers' keys that verified
  the approval statements (``approvers``), so that each signed thing is checked offline under the
  key that could sign at its signed time;
- ``report.json``, ``report.html``, ``controls.json``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from govdeploy.errors import GovdeployError
from govdeploy.evidence.controls import control_matrix
from govdeploy.evidence.report import build_facts, render_html
from govdeploy.trust.anchors import Anchor
from govdeploy.trust.audit import AuditRecord
from govdeploy.trust.keys import fingerprint
from govdeploy.trust.serving_content import ServingRecord, record_digest

FORMAT = "govdeploy-evidence/1"
MANIFEST = "manifest.json"
MANIFEST_SIG = "manifest.sig"
AUDIT_KEY = "keys/audit.pub"
KEY_INDEX = "keys/trusted.json"
RECORDS = "audit/records.jsonl"
ANCHORS = "audit/anchors.json"
SERVING_DIR = "serving/records/"
UNSIGNED = frozenset({MANIFEST, MANIFEST_SIG})


class EvidenceError(GovdeployError):
    """An evidence pack could not be written."""


@dataclass
class Collected:
    """Everything known about one version, gathered and verified by ``govdeploy.evidence.collect``."""

    model: str
    version: str
    artifacts: dict[str, bytes]  # path inside the version's artifacts -> bytes
    transcript: dict[str, Any]
    tags: dict[str, str] = field(default_factory=dict)
    gate_run: dict[str, Any] | None = None
    drift_run: dict[str, Any] | None = None
    serving: list[bytes] = field(default_factory=list)  # signed serving record documents naming it
    serving_records: list[ServingRecord] = field(default_factory=list)  # their verified content
    keys: dict[str, bytes] = field(default_factory=dict)  # pack path under keys/ -> PEM
    key_index: dict[str, Any] | None = None  # keys/trusted.json (collect.key_index)
    audit_records: list[AuditRecord] = field(default_factory=list)
    anchors: list[Anchor] = field(default_factory=list)
    catalog: dict[str, Any] | None = None
    exported_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


@dataclass(frozen=True)
class Written:
    directory: Path
    files: int
    fingerprint: str


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, default=str).encode() + b"\n"


def _approval_statements(approvals: bytes | None) -> list[dict[str, Any]]:
    if not approvals:
        return []
    document = json.loads(approvals)
    return [dict(a) for a in document.get("approvals", [])]


def serving_periods(records: list[ServingRecord], version: str) -> list[dict[str, Any]]:
    """The records naming ``version``, with its role and share of traffic in each."""
    periods = []
    for record in sorted(records, key=lambda r: r.sequence):
        role = (
            "champion"
            if record.champion == version
            else "challenger"
            if record.challenger == version
            else None
        )
        if role is None:
            continue
        weight = (
            record.challenger_weight
            if role == "challenger"
            else 100 - (record.challenger_weight if record.challenger else 0)
        )
        periods.append(
            {
                "sequence": record.sequence,
                "action": record.action,
                "issued_at": record.issued_at,
                "issuer": record.issuer,
                "role": role,
                "weight": 0 if record.killed else weight,
                "champion": record.champion,
                "challenger": record.challenger,
                "challenger_weight": record.challenger_weight,
                "killed": record.killed,
                "audit_record": record.audit_record,
            }
        )
    return periods


def pack_files(collected: Collected) -> dict[str, bytes]:
    """Every file of the pack but the report, the control matrix and the manifest."""
    files: dict[str, bytes] = {f"artifacts/{name}": data for name, data in collected.artifacts.items()}
    files["verification.json"] = _json(collected.transcript)
    files["registry/version.json"] = _json(
        {"model": collected.model, "version": collected.version, "tags": collected.tags}
    )
    if collected.gate_run is not None:
        files["gate/decision_run.json"] = _json(
            {k: v for k, v in collected.gate_run.items() if k != "report"}
        )
        if collected.gate_run.get("report") is not None:
            files["gate/gate_report.json"] = _json(collected.gate_run["report"])
    if collected.drift_run is not None:
        files["drift/decision_run.json"] = _json(collected.drift_run)
    statements = _approval_statements(collected.artifacts.get("approvals.json"))
    if statements:
        files["approvals/statements.json"] = _json(statements)
    for record, document in zip(collected.serving_records, collected.serving, strict=True):
        files[f"{SERVING_DIR}{record.sequence:06d}-{record_digest(record)[:12]}.json"] = document
    if collected.serving_records:
        files["serving/periods.json"] = _json(serving_periods(collected.serving_records, collected.version))
    if collected.audit_records:
        files[RECORDS] = b"".join(r.model_dump_json().encode() + b"\n" for r in collected.audit_records)
        files[ANCHORS] = _json([{"seq": a.seq, "hash": a.hash, "time": a.time} for a in collected.anchors])
    for name, pem in collected.keys.items():
        files[f"keys/{name}"] = pem
    if collected.key_index is not None:
        files[KEY_INDEX] = _json(collected.key_index)
    if collected.catalog is not None:
        files["catalog/model.json"] = _json(collected.catalog)
    return files


def _safe(path: str) -> str:
    parts = Path(path).parts
    if Path(path).is_absolute() or ".." in parts or not parts:
        raise EvidenceError(f"refusing pack path {path!r}")
    return path


def write_pack(collected: Collected, out: Path, audit_key: ed25519.Ed25519PrivateKey) -> Written:
    """Write the pack to ``out`` (which must not exist or be empty), its report, control matrix and
    the manifest signed with ``audit_key``."""
    if out.exists() and any(out.iterdir()):
        raise EvidenceError(f"{out} exists and is not empty; choose a new directory for the pack")
    pem = audit_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    files = pack_files(collected)
    files[AUDIT_KEY] = pem
    facts = build_facts(collected, files)
    matrix = control_matrix([*files, "report.json", "report.html", "controls.json", MANIFEST], facts)
    facts["controls"] = matrix
    files["controls.json"] = _json(matrix)
    files["report.json"] = _json(facts)
    files["report.html"] = render_html(facts).encode()
    for name, data in files.items():
        target = out / _safe(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    print_fp = fingerprint(pem)
    manifest = {
        "format": FORMAT,
        "model": collected.model,
        "version": collected.version,
        "exported_at": collected.exported_at,
        "signed_by": {
            "algorithm": "Ed25519",
            "role": "audit",
            "public_key": pem.decode(),
            "fingerprint": print_fp,
        },
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }
    body = _json(manifest)
    (out / MANIFEST).write_bytes(body)
    (out / MANIFEST_SIG).write_bytes(base64.b64encode(audit_key.sign(body)) + b"\n")
    return Written(out, len(files) + 2, print_fp)
