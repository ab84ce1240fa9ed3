"""Evidence packs built in a temp dir from a signed model directory, signed audit records and a
signed serving record, for the evidence tests."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from govdeploy.evidence.pack import Collected, write_pack
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


def _records(
    key: ed25519.Ed25519PrivateKey, new_key: ed25519.Ed25519PrivateKey | None = None, new_from: int = 4
) -> list[AuditRecord]:
    """Three chained records of m v1 one second apart; from ``new_from`` on signed with ``new_key``."""
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
        signer = new_key if new_key is not None and seq >= new_from else key
        record.signature = base64.b64encode(signer.sign(bytes.fromhex(record.hash))).decode()
        records.append(record)
        prev = record.hash
    return records


@dataclass
class Rotated:
    """What a pack of a deployment whose audit key (and an approver's) rotated carries."""

    audit_key: ed25519.Ed25519PrivateKey  # signs the manifest and the records from ``new_from`` on
    old_audit_key: ed25519.Ed25519PrivateKey
    new_from: int
    approvals: list[dict[str, Any]]
    index: dict[str, Any]


def build_pack(tmp_path: Path, rotated: Rotated | None = None) -> tuple[Path, Path]:
    """A pack of m v1 in ``tmp_path / "pack"``, and its audit public key file."""
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
    approvals = rotated.approvals if rotated else []
    (model / "approvals.json").write_text(json.dumps({"approvals": approvals}))
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
    audit_key = rotated.audit_key if rotated else ed25519.Ed25519PrivateKey.generate()
    (keys / "audit.pub").write_bytes(pem_public(audit_key))
    trail = _records(rotated.old_audit_key, audit_key, rotated.new_from) if rotated else _records(audit_key)
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
        key_index=rotated.index if rotated else None,
    )
    out = tmp_path / "pack"
    write_pack(collected, out, audit_key)
    return out, keys / "audit.pub"
