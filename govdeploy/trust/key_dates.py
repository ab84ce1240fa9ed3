"""Keys with dates: choosing, for a signed thing, the key that could sign it at its signed time.

A rotation retires a key at a moment T (``retired_at``) and starts its successor then
(``valid_from``): the retired key keeps verifying what it signed before T and nothing dated after
it. Whatever carries a signed time is checked that way:

- ``DatedKey``  an Ed25519 public key (audit records, approval and submission statements, evidence
  manifests) with its dates; ``signer_at`` picks the one that verifies a signature and could sign
  at the signed time, or says why none could;
- ``PinnedKey`` a PEM file of a trusted key (``keys.trusted_keys``: model signing, serving records)
  that remembers its ``trust.yaml`` dates: it is a ``Path``, so code that reads key files keeps
  working, and what checks a signed time (``serving_records.verify_record``) finds its dates.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PosixPath
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from govdeploy.config.trust import KeyDates

UNDATED = KeyDates()


class PinnedKey(PosixPath):
    """A trusted key's PEM file and its dates (None on paths derived from it)."""

    dates: KeyDates | None = None

    @classmethod
    def of(cls, path: Path | str, dates: KeyDates | None) -> PinnedKey:
        pinned = cls(path)
        pinned.dates = dates
        return pinned


def dates_of(path: object) -> KeyDates:
    """The dates of a key file (``PinnedKey``), none for a plain path: valid at any time."""
    return getattr(path, "dates", None) or UNDATED


def parse_moment(value: str) -> datetime | None:
    """A signed time (ISO 8601 with a time zone) in UTC; None when it is not one."""
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None or moment.utcoffset() is None:
        return None
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return None


def pem_of(key: ed25519.Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass(frozen=True)
class DatedKey:
    """An Ed25519 public key, where it was configured, and its dates."""

    key: ed25519.Ed25519PublicKey
    where: str
    dates: KeyDates = field(default=UNDATED)
    pinned: bool = True

    @property
    def pem(self) -> bytes:
        return pem_of(self.key)

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the key's DER encoding, as ``keys.fingerprint`` names keys."""
        der = self.key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(der).hexdigest()

    def verifies(self, signature: str, message: bytes) -> bool:
        """Whether ``signature`` (base64) is this key's over ``message``."""
        try:
            self.key.verify(base64.b64decode(signature, validate=True), message)
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True

    def same_key(self, other: ed25519.Ed25519PublicKey) -> bool:
        return self.key.public_bytes_raw() == other.public_bytes_raw()

    def describe(self) -> str:
        return f"sha256 {self.fingerprint[:16]}… ({self.where})"

    def as_json(self) -> dict[str, Any]:
        """The key as an evidence pack carries it: PEM, fingerprint and dates."""
        return {
            "public_key": self.pem.decode(),
            "fingerprint": self.fingerprint,
            **self.dates.model_dump(mode="json"),
        }


@dataclass(frozen=True)
class Signer:
    """Which key signed: ``key`` when one could sign at the signed time, else ``refusal``."""

    key: DatedKey | None
    refusal: str = ""


def signer_at(keys: Sequence[DatedKey], signature: str, message: bytes, moment: datetime | None) -> Signer:
    """The key of ``keys`` whose signature ``signature`` is over ``message`` and that could sign at
    ``moment`` (None: a signed time that could not be read, only undated keys qualify). When a key
    verifies but could not sign then, the refusal says which key and why; when none verifies, the
    refusal is empty."""
    verifying = [k for k in keys if k.verifies(signature, message)]
    for key in verifying:
        if moment is None and key.dates == UNDATED:
            return Signer(key)
        if moment is not None and key.dates.signs_at(moment):
            return Signer(key)
    if not verifying:
        return Signer(None)
    key = verifying[0]
    why = key.dates.why_not(moment) if moment is not None else "its signed time is not an ISO 8601 time"
    return Signer(None, f"it is signed by the key {key.describe()} but {why}")


def dated_from_json(data: dict[str, Any], where: str) -> DatedKey:
    """A key as ``DatedKey.as_json`` wrote it; ValueError when it is not one."""
    key = serialization.load_pem_public_key(str(data["public_key"]).encode())
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ValueError(f"{where}: not an Ed25519 public key")
    dates = KeyDates.model_validate({k: v for k, v in data.items() if k in KeyDates.model_fields})
    return DatedKey(key, where, dates)
