"""Evidence packs built in a temp dir from a signed model directory, signed audit records and a
signed serving record: verify passes, then names each altered, removed or added file and a broken
audit chain."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from typer.testing import CliRunner

from govdeploy.cli import app
from govdeploy.evidence.pack import Collected, write_pack
from govdeploy.evidence.verify import verify_pack
from govdeploy.trust.anchors import Anchor
from govdeploy.trust.audit import GENESIS, AuditRecord, record_hash
from govdeploy.trust.keys import pem_private, pem_public
from govdeploy.trust.serving_content import ServingRecord
from govdeploy.trust.serving_records import sign_record
from govdeploy.trust.signatures import (
    Identity,
    ReleaseClaims,
    artifact_digest,
    sign_and_digest,
    write_identity,
    write_release_claims,
)


def _pair(tmp: Path, name: str) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp / f"{name}.key").write_bytes(pem_private(key))
    (tmp / f"{name}.pub").write_bytes(pem_public(key))
    return tmp / f"{name}.key"


def _records(key: ed25519.Ed25519PrivateKey) -> list[AuditRecord]:
    records, prev = [], GENESIS
    for seq, action in enumerate(("candidate.registered", "gate.passed", "release.promoted"), start=1):
        record = AuditRecord(
            seq=seq,
            id=f"id{seq}",
            time=f"2026-11-30T00:00:0{seq}+00:00",
            actor="t",
            action=action,
            model="m",
            version="1",
            prev=prev,
        )
        record.hash = record_hash(record)
        record.signature = base64.b64encode(key.sign(bytes.fromhex(record.hash))).decode()
        records.append(record)
        prev = record.hash
    return records


@pytest.fixture
def pack(tmp_path: Path) -> tuple[Path, Path]:
    keys = tmp_path / "keys"
    keys.mkdir()
    model = tmp_path / "model"
    (model / "governance").mkdir(parents=True)
    (model / "model.bin").write_bytes(b"weights")
    (model / "governance" / "lineage.json").write_text(json.dumps({"dataset_digest": "d" * 64}))
    write_identity(
        model,
        Identity(
            model="m", version="1", model_id="m-1", run_id="r", submitted_by="dana", submission_proven=True
        ),
    )
    sign_and_digest(model, _pair(keys, "candidate"), "candidate")
    (model / "approvals.json").write_text(json.dumps({"approvals": []}))
    write_release_claims(model, ReleaseClaims(model="m", version="1", artifact_digest=artifact_digest(model)))
    sign_and_digest(model, _pair(keys, "release"), "release")
    serving_key = _pair(keys, "serving")
    record = ServingRecord(
        model="m",
        champion="1",
        challenger=None,
        challenger_weight=0,
        issued_at="2026-11-30T00:00:04+00:00",
        issuer="t",
        sequence=1,
        action="promotion",
    )
    audit_key = ed25519.Ed25519PrivateKey.generate()
    (keys / "audit.pub").write_bytes(pem_public(audit_key))
    trail = _records(audit_key)
    names = (
        "govdeploy-identity.json",
        "govdeploy-release.json",
        "approvals.json",
        "candidate.sig",
        "release.sig",
        "governance/lineage.json",
    )
    collected = Collected(
        model="m",
        version="1",
        artifacts={n: (model / n).read_bytes() for n in names},
        transcript={"verified_level": "release"},
        serving=[sign_record(record, serving_key)],
        serving_records=[record],
        keys={f"{r}-1.pub": (keys / f"{r}.pub").read_bytes() for r in ("candidate", "release", "serving")},
        audit_records=trail,
        anchors=[Anchor(seq=r.seq, hash=r.hash, time=r.time) for r in trail],
        catalog={"description": "test model", "owners": {}},
    )
    out = tmp_path / "pack"
    write_pack(collected, out, audit_key)
    return out, keys / "audit.pub"


def test_an_intact_pack_verifies(pack: tuple[Path, Path]) -> None:
    out, public = pack
    report = verify_pack(out, public.read_bytes())
    assert report.problems == []
    assert any("candidate.sig verifies" in s for s in report.summary)
    assert any("release.sig verifies" in s for s in report.summary)
    assert any("audit records 1..3" in s for s in report.summary)
    html = (out / "report.html").read_text()
    assert "<svg" in html and "Control matrix" in html
    controls = json.loads((out / "controls.json").read_text())
    assert {c["status"] for c in controls} == {"evidenced", "gap"}


def test_the_cli_names_an_altered_byte(pack: tuple[Path, Path]) -> None:
    out, public = pack
    target = out / "artifacts" / "governance" / "lineage.json"
    data = bytearray(target.read_bytes())
    data[3] ^= 1
    target.write_bytes(bytes(data))
    result = CliRunner().invoke(app, ["evidence", "verify", str(out), "--public-key", str(public)])
    assert result.exit_code == 1
    assert "artifacts/governance/lineage.json was altered" in str(result.exception)
    assert "is not the file the candidate signature covers" in str(result.exception)


def test_removed_and_added_files_are_named(pack: tuple[Path, Path]) -> None:
    out, public = pack
    (out / "report.html").unlink()
    (out / "extra.txt").write_text("x")
    problems = verify_pack(out, public.read_bytes()).problems
    assert "report.html is missing (listed in the manifest)" in problems
    assert "extra.txt was added (not in the manifest)" in problems


def test_a_tampered_audit_record_breaks_the_chain(pack: tuple[Path, Path]) -> None:
    out, public = pack
    path = out / "audit" / "records.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace("gate.passed", "gate.failed")
    path.write_text("\n".join(lines) + "\n")
    problems = verify_pack(out, public.read_bytes()).problems
    assert "audit record 2 (gate.failed) was edited: its hash does not match" in problems
    assert any(p.startswith("audit/records.jsonl was altered") for p in problems)


def test_a_different_pinned_key_is_refused(pack: tuple[Path, Path], tmp_path: Path) -> None:
    out, _ = pack
    other = tmp_path / "other.pub"
    other.write_bytes(pem_public(ed25519.Ed25519PrivateKey.generate()))
    problems = verify_pack(out, other.read_bytes()).problems
    assert any("not the pinned key" in p for p in problems)
    assert any("manifest.sig is not a valid signature" in p for p in problems)


def test_a_forged_serving_record_is_named(pack: tuple[Path, Path]) -> None:
    out, public = pack
    document = next((out / "serving" / "records").iterdir())
    parsed = json.loads(document.read_text())
    parsed["record"]["challenger_weight"] = 50
    document.write_text(json.dumps(parsed))
    problems = verify_pack(out, public.read_bytes()).problems
    assert any("not signed by a trusted key" in p for p in problems)
