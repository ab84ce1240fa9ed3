from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from govdeploy.errors import CryptoError
from govdeploy.trust.audit import AuditLog
from govdeploy.trust.encryption import Envelope, open_envelope, seal
from tests.govdeploy.trust.test_audit import MemoryAnchors

MASTER = os.urandom(32)


def test_seal_and_open() -> None:
    envelope = seal(b"alice@example.com", MASTER, "record-1")
    assert open_envelope(envelope, MASTER, "record-1") == b"alice@example.com"
    assert (
        seal(b"alice@example.com", MASTER, "record-1").wrapped_key != envelope.wrapped_key
    )  # a key per object


@pytest.mark.parametrize(
    ("key", "object_id", "edit"),
    [(os.urandom(32), "record-1", False), (MASTER, "record-2", False), (MASTER, "record-1", True)],
    ids=["wrong master key", "moved to another record", "altered ciphertext"],
)
def test_what_does_not_open(key: bytes, object_id: str, edit: bool) -> None:
    envelope = seal(b"secret", MASTER, "record-1")
    if edit:
        raw = bytearray(envelope.ciphertext.encode())
        raw[2] = ord("A") if raw[2] != ord("A") else ord("B")
        envelope = Envelope(**{**envelope.model_dump(), "ciphertext": raw.decode()})
    with pytest.raises(CryptoError, match="does not open"):
        open_envelope(envelope, key, object_id)


def test_audit_records_hold_personal_data_only_as_ciphertext(tmp_path: Path) -> None:
    log = AuditLog(
        tmp_path / "a.jsonl",
        ed25519.Ed25519PrivateKey.generate(),
        MemoryAnchors(),
        sealer=lambda data, record_id: seal(data, MASTER, record_id).model_dump(),
    )
    record = log.append(
        "approval.accepted", "alice", {"reason": "ok"}, sensitive={"email": "alice@example.com"}
    )
    on_disk = (tmp_path / "a.jsonl").read_bytes()
    assert b"alice@example.com" not in on_disk
    sealed = Envelope.model_validate(record.payload["sealed"])
    assert open_envelope(sealed, MASTER, record.id) == b'{"email":"alice@example.com"}'
