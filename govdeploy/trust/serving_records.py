"""Signed serving records: which versions serve a model, with which challenger weight.

Every change of serving state (promotion, canary step, canary outcome, rollback) writes a record
signed with the model-signing key (ECDSA P-256 over its canonical JSON) to the bucket
(``serving/<model>.json``, versioned). The gateway serves an aliased version only if the
latest verified record names it: an alias moved by hand, without a record, changes nothing.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, ValidationError

from govdeploy.backends import storage
from govdeploy.errors import SignatureError
from govdeploy.trust.audit import canonical
from govdeploy.trust.keys import load_ecdsa_private, load_ecdsa_public

PREFIX = "serving/"


class ServingRecord(BaseModel):
    model: str
    champion: str | None
    challenger: str | None
    challenger_weight: int
    issued_at: str
    issuer: str


def sign_record(record: ServingRecord, key: Path) -> bytes:
    signature = load_ecdsa_private(key).sign(canonical(record.model_dump()), ec.ECDSA(hashes.SHA256()))
    return json.dumps(
        {"record": record.model_dump(), "signature": base64.b64encode(signature).decode()}
    ).encode()


def verify_record(document: bytes, trusted_keys: list[Path]) -> ServingRecord:
    """The record, if its signature verifies with one of ``trusted_keys``; SignatureError otherwise."""
    try:
        parsed = json.loads(document)
        record = ServingRecord.model_validate(parsed["record"])
        signature = base64.b64decode(parsed["signature"])
    except (ValueError, KeyError, TypeError, ValidationError):
        raise SignatureError("the serving record is not a signed record") from None
    for path in trusted_keys:
        key = load_ecdsa_public(path)
        try:
            key.verify(signature, canonical(record.model_dump()), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        return record
    raise SignatureError(f"the serving record of {record.model} is not signed by a trusted key")


def write(client: Any, bucket: str, record: ServingRecord, key: Path) -> None:
    client.put_object(
        Bucket=bucket,
        Key=f"{PREFIX}{record.model}.json",
        Body=sign_record(record, key),
        ContentType="application/json",
    )


def read(client: Any, bucket: str, model: str, trusted_keys: list[Path]) -> ServingRecord | None:
    """The latest verified record of ``model``, or None if there is none yet."""
    body = storage.read_object(client, bucket, f"{PREFIX}{model}.json")
    return None if body is None else verify_record(body, trusted_keys)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
