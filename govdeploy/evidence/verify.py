"""Verifying an evidence pack offline: the signed manifest, every file's digest, the audit chain
proof, the serving records' signatures, the approval statements and the model-signing bundles.
Nothing is fetched. Whatever carries a signed time (audit records, serving records, statements) is
checked under the key that could sign at that time (``govdeploy.evidence.verify_keys``)."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import ValidationError

from govdeploy.errors import GovdeployError
from govdeploy.evidence.pack import ANCHORS, AUDIT_KEY, MANIFEST, MANIFEST_SIG, RECORDS, SERVING_DIR, UNSIGNED
from govdeploy.evidence.verify_keys import PackKeys, audit_ring, check_statements, pinned_files, read_index
from govdeploy.trust.audit import AuditRecord, record_hash
from govdeploy.trust.audit_keys import AuditKeys
from govdeploy.trust.keys import fingerprint, load_ed25519_public
from govdeploy.trust.manifests import file_digests, signed_manifest
from govdeploy.trust.serving_records import verify_record


@dataclass
class PackReport:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    fingerprint: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def _files(directory: Path) -> set[str]:
    return {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}


def verify_pack(directory: Path, public_key_pem: bytes | None = None) -> PackReport:
    """Every problem of the pack at ``directory``; with ``public_key_pem`` the manifest and the audit
    records are checked under that (pinned) audit key, otherwise under the key the pack carries."""
    report = PackReport()
    manifest_path, sig_path = directory / MANIFEST, directory / MANIFEST_SIG
    if not manifest_path.is_file() or not sig_path.is_file():
        report.problems.append(
            f"{directory} has no {MANIFEST} and {MANIFEST_SIG}: it is not an evidence pack"
        )
        return report
    body = manifest_path.read_bytes()
    try:
        manifest = json.loads(body)
        carried = manifest["signed_by"]["public_key"].encode()
        listed: dict[str, str] = dict(manifest["files"])
    except (ValueError, KeyError, TypeError):
        report.problems.append(f"{MANIFEST} is not a pack manifest")
        return report
    key, report.fingerprint = _manifest_key(carried, public_key_pem, report)
    if key is None:
        return report
    try:
        key.verify(base64.b64decode(sig_path.read_bytes().strip()), body)
    except (InvalidSignature, ValueError):
        report.problems.append(
            f"{MANIFEST_SIG} is not a valid signature of {MANIFEST} under the audit key {report.fingerprint}"
        )
    report.problems += _digest_problems(directory, listed)
    present = _files(directory)
    if (directory / AUDIT_KEY).is_file() and fingerprint(
        (directory / AUDIT_KEY).read_bytes()
    ) != report.fingerprint:
        report.problems.append(f"{AUDIT_KEY} is not the key the manifest was checked under")
    index = read_index(directory)
    report.problems += [index.problem] if index.problem else []
    ring, manifest_problems = audit_ring(key, str(manifest.get("exported_at")), index)
    report.problems += manifest_problems
    _check_audit(directory, ring, report)
    _check_serving(directory, present, index, report)
    statements, said = check_statements(
        directory, str(manifest.get("model")), str(manifest.get("version")), index
    )
    report.problems += statements
    report.summary += [said] if said else []
    _check_bundles(directory, present, report)
    report.summary.insert(
        0,
        f"{len(listed)} files match the signed manifest ({MANIFEST}) of "
        f"{manifest.get('model')} v{manifest.get('version')}, exported {manifest.get('exported_at')}",
    )
    return report


def _manifest_key(
    carried: bytes, pinned: bytes | None, report: PackReport
) -> tuple[ed25519.Ed25519PublicKey | None, str]:
    try:
        carried_fp = fingerprint(carried)
        if pinned is None:
            report.warnings.append(
                f"checked under the audit key the pack carries (sha256 {carried_fp}): compare this "
                "fingerprint with the deployment's pinned audit key, or pass --public-key"
            )
            return load_ed25519_public(carried, MANIFEST), carried_fp
        pinned_fp = fingerprint(pinned)
        if pinned_fp != carried_fp:
            report.problems.append(
                f"the manifest names the audit key {carried_fp}, not the pinned key {pinned_fp}"
            )
        return load_ed25519_public(pinned, "--public-key"), pinned_fp
    except (GovdeployError, ValueError, TypeError) as exc:
        report.problems.append(f"the audit public key cannot be read: {exc}")
        return None, ""


def _digest_problems(directory: Path, listed: dict[str, str]) -> list[str]:
    present = _files(directory) - UNSIGNED
    problems = [f"{name} is missing (listed in the manifest)" for name in sorted(listed.keys() - present)]
    problems += [f"{name} was added (not in the manifest)" for name in sorted(present - listed.keys())]
    for name in sorted(present & listed.keys()):
        actual = hashlib.sha256((directory / name).read_bytes()).hexdigest()
        if actual != listed[name]:
            problems.append(
                f"{name} was altered: sha256 {actual[:16]}…, the manifest says {listed[name][:16]}…"
            )
    return problems


def _check_audit(directory: Path, ring: AuditKeys, report: PackReport) -> None:
    path = directory / RECORDS
    if not path.is_file():
        report.warnings.append("the pack holds no audit records")
        return
    records: list[AuditRecord] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            records.append(AuditRecord.model_validate_json(line))
        except ValidationError:
            report.problems.append(f"{RECORDS} line {number} is not an audit record")
    try:
        anchors = {int(a["seq"]): a for a in json.loads((directory / ANCHORS).read_text(encoding="utf-8"))}
    except (OSError, ValueError, KeyError, TypeError):
        report.problems.append(f"{ANCHORS} is missing or unreadable: the records are not anchored")
        anchors = {}
    before: AuditRecord | None = None
    for record in records:
        if before is not None and record.seq <= before.seq:
            report.problems.append(
                f"audit record {record.seq} follows record {before.seq}: inserted or moved"
            )
        if before is not None and record.prev != before.hash:
            report.problems.append(f"audit record {record.seq} does not chain to record {before.seq}")
        if record_hash(record) != record.hash:
            report.problems.append(
                f"audit record {record.seq} ({record.action}) was edited: its hash does not match"
            )
        signature = ring.problem(record)
        if signature:
            report.problems.append(f"audit {signature}")
        anchor = anchors.get(record.seq)
        if anchor is not None and (anchor.get("hash") != record.hash or anchor.get("time") != record.time):
            report.problems.append(f"audit record {record.seq} differs from its anchor")
        before = record
    seqs = {r.seq for r in records}
    report.problems += [f"anchor {seq} has no record in the pack" for seq in sorted(anchors.keys() - seqs)]
    if records and records[-1].seq not in anchors:
        report.problems.append(
            f"the last audit record {records[-1].seq} has no anchor: the chain is not anchored"
        )
    if records:
        report.summary.append(
            f"audit records {records[0].seq}..{records[-1].seq} ({len(records)}) hash-chained and signed, "
            f"{len(anchors)} anchors match (as copied from the bucket at export: the lock itself is checked "
            "by 'govdeploy audit verify')"
        )


def _check_serving(directory: Path, present: set[str], index: PackKeys, report: PackReport) -> None:
    documents = sorted(name for name in present if name.startswith(SERVING_DIR))
    names = [name for name in sorted(present) if name.startswith("keys/serving")]
    keys = pinned_files(directory, names, index)
    verified = 0
    for name in documents:
        try:
            record = verify_record((directory / name).read_bytes(), keys)
        except GovdeployError as exc:
            report.problems.append(f"{name}: {exc}")
            continue
        if not Path(name).name.startswith(f"{record.sequence:06d}-"):
            report.problems.append(f"{name} holds the serving record of sequence {record.sequence}")
        verified += 1
    if documents:
        report.summary.append(
            f"{verified} of {len(documents)} signed serving records verify under the pack's "
            f"serving keys ({len(keys)}), each under a key valid when it was issued"
        )


def _check_bundles(directory: Path, present: set[str], report: PackReport) -> None:
    levels = ["candidate"] + (["release"] if "artifacts/govdeploy-release.json" in present else [])
    for level in levels:
        bundle = directory / "artifacts" / f"{level}.sig"
        if not bundle.is_file():
            report.problems.append(f"artifacts/{level}.sig (the {level} model-signing bundle) is missing")
            continue
        keys = [directory / n for n in sorted(present) if n.startswith(f"keys/{level}")]
        try:
            signed, signer = signed_manifest(bundle, keys)
        except GovdeployError as exc:
            report.problems.append(
                f"artifacts/{level}.sig does not verify under the pack's {level} keys: {exc}"
            )
            continue
        digests = file_digests(signed)
        copied = [n.removeprefix("artifacts/") for n in present if n.startswith("artifacts/")]
        matched = 0
        for name in copied:
            if name in digests:
                actual = hashlib.sha256((directory / "artifacts" / name).read_bytes()).hexdigest()
                if actual != digests[name]:
                    report.problems.append(f"artifacts/{name} is not the file the {level} signature covers")
                else:
                    matched += 1
        report.summary.append(
            f"{level}.sig verifies under {signer.name} (sha256 {fingerprint(signer.read_bytes())[:16]}…): "
            f"{matched} copied files match it, {len(digests) - matched} signed model files not copied"
        )


def describe(report: PackReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "problems": report.problems,
        "warnings": report.warnings,
        "summary": report.summary,
        "fingerprint": report.fingerprint,
    }
