"""The audit role's keys: every trusted audit public key with its dates, chosen per record by time.

The audit key rotates like the other roles (``govdeploy keys rotate --role audit``): the old key is
retired at T and its successor starts then. A record is verified under the key that could sign at
the record's ``time``: the records before T under the old key, those after under the new one, and a
record the retired key signed with a time after T is refused, naming the key and its retirement.

Where the keys come from (``audit_public_key``):

- ``GOVDEPLOY_AUDIT_PUBLIC_KEY``: a PEM file kept outside the state directory, holding one public
  key or several (after a rotation append the new one); each takes its dates from the matching
  ``roles.audit`` entry of ``trust.yaml`` (none: valid at any time). Only these keys are used.
- otherwise every ``roles.audit`` entry of ``trust.yaml``: inline PEMs are pinned, a ``key_file``
  lies in the keys directory beside the log and is not (``audit_trail.key_findings`` says so).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import ed25519

from govdeploy.config.settings import Settings
from govdeploy.config.trust import KeyDates, TrustedKey, load_trust
from govdeploy.errors import AuditError, ConfigError
from govdeploy.trust.key_dates import DatedKey, dated_from_json, parse_moment, signer_at
from govdeploy.trust.keys import entry_pem, fingerprint, load_ed25519_public, read_public

PEM_BLOCK = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)


class SignedRecord(Protocol):
    seq: int
    action: str
    time: str
    hash: str
    signature: str


@dataclass(frozen=True)
class AuditKeys:
    """The audit public keys a record may verify under, each with its dates."""

    keys: tuple[DatedKey, ...]

    @classmethod
    def of(cls, key: ed25519.Ed25519PublicKey | AuditKeys) -> AuditKeys:
        """``key`` as a ring: one key without dates (valid at any time), or the ring itself."""
        return key if isinstance(key, AuditKeys) else cls((DatedKey(key, "the given audit key"),))

    def problem(self, record: SignedRecord) -> str | None:
        """Why ``record`` has no valid signature of an audit key that could sign at its time."""
        try:
            message = bytes.fromhex(record.hash)
        except ValueError:
            message = b""
        found = signer_at(self.keys, record.signature, message, parse_moment(record.time))
        if found.key is not None:
            return None
        if found.refusal:
            return (
                f"record {record.seq} ({record.action}) is refused: {found.refusal}; whoever holds a "
                "copy of the retired key wrote it: distrust it and find out who"
            )
        return f"record {record.seq} has no valid signature of the audit key"

    def check_signer(self, public: ed25519.Ed25519PublicKey, moment: datetime) -> None:
        """AuditError when ``public`` is a key of the ring that may not sign at ``moment``."""
        for key in self.keys:
            if key.same_key(public) and not key.dates.signs_at(moment):
                raise AuditError(
                    f"the audit signing key {key.describe()} may not sign at {moment.isoformat()}: "
                    f"{key.dates.why_not(moment)}; sign with the audit role's current key"
                )

    def rotated(
        self, old: ed25519.Ed25519PublicKey, new: ed25519.Ed25519PublicKey, at: datetime
    ) -> AuditKeys:
        """The ring after a rotation at ``at``: ``old`` retired then, ``new`` valid from then."""
        kept = [
            k if not k.same_key(old) else DatedKey(k.key, k.where, _retire(k.dates, at), k.pinned)
            for k in self.keys
        ]
        return AuditKeys((DatedKey(new, "the new audit key", KeyDates(valid_from=at), False), *kept))

    def as_json(self) -> list[dict[str, Any]]:
        return [key.as_json() for key in self.keys]

    @classmethod
    def from_json(cls, data: Sequence[dict[str, Any]], where: str) -> AuditKeys:
        return cls(tuple(dated_from_json(item, f"{where} entry {i}") for i, item in enumerate(data, 1)))


def _retire(dates: KeyDates, at: datetime) -> KeyDates:
    return dates.model_copy(update={"retired_at": min(dates.retired_at or at, at)})


@dataclass(frozen=True)
class AuditKey:
    """The current audit key, where the ring comes from, whether it is pinned, and the ring."""

    key: ed25519.Ed25519PublicKey
    path: Path
    pinned: bool
    ring: AuditKeys | None = None

    @property
    def keys(self) -> AuditKeys:
        return self.ring or AuditKeys.of(self.key)


def _entry_key(settings: Settings, entry: TrustedKey) -> DatedKey:
    if entry.public_key is not None:
        where = f"{settings.trust_path} roles.audit"
        return DatedKey(load_ed25519_public(entry.public_key.encode(), where), where, entry.dates())
    path = settings.keys_dir / str(entry.key_file)
    key = load_ed25519_public(read_public(path, "audit public key"), str(path))
    return DatedKey(key, str(path), entry.dates(), pinned=False)


def _configured(settings: Settings) -> AuditKey:
    trust = load_trust(settings.trust_path)
    current = trust.keys("audit")[0]  # ConfigError (fail closed) when no audit key signs now
    ring = AuditKeys(tuple(_entry_key(settings, e) for e in trust.verifying("audit")))
    first = _entry_key(settings, current)
    unpinned = [Path(k.where) for k in ring.keys if not k.pinned]
    where = unpinned[0] if unpinned else settings.trust_path
    return AuditKey(first.key, where, not unpinned, ring)


def _dates_in_trust(settings: Settings, pem: bytes) -> KeyDates | None:
    """The dates of the ``roles.audit`` entry pinning ``pem`` (undated when none does); None when that
    entry is no longer trusted (past its valid_until)."""
    mine = fingerprint(pem)
    for entry in load_trust(settings.trust_path).roles["audit"]:
        try:
            same = fingerprint(entry_pem(entry, settings.keys_dir, "audit")) == mine
        except (ConfigError, ValueError, TypeError):
            continue
        if same:
            return entry.dates() if entry.trusted_at(datetime.now(UTC)) else None
    return KeyDates()


def _pinned(settings: Settings, path: Path) -> AuditKey:
    if not path.is_file():
        raise ConfigError(
            f"GOVDEPLOY_AUDIT_PUBLIC_KEY={path} does not exist; point it at the PEM public key of "
            "the audit signing key, kept outside the state directory"
        )
    where = f"GOVDEPLOY_AUDIT_PUBLIC_KEY={path}"
    text = read_public(path, "pinned audit public key")
    keys = []
    for pem in PEM_BLOCK.findall(text) or [text]:
        dates = _dates_in_trust(settings, pem)
        if dates is not None:
            keys.append(DatedKey(load_ed25519_public(pem, where), where, dates))
    if not keys:
        raise ConfigError(f"{where}: none of its keys is trusted now (each is past its valid_until)")
    now = datetime.now(UTC)
    keys.sort(key=lambda k: not k.dates.signs_at(now))  # the key that signs now first
    return AuditKey(keys[0].key, path, True, AuditKeys(tuple(keys)))


def audit_public_key(settings: Settings) -> AuditKey:
    """The audit keys records are checked under: ``GOVDEPLOY_AUDIT_PUBLIC_KEY``, else the audit role
    of ``trust.yaml`` (see the module docstring); ``key`` is the first of them."""
    if settings.audit_public_key is None:
        return _configured(settings)
    return _pinned(settings, settings.audit_public_key)
