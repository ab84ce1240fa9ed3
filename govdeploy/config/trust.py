"""Trusted public keys by role, ``config/trust.yaml``: the pinned roots of every signature.

Each role signs one kind of statement and a signature verifies only under its own role's keys:

- ``candidate``  training signs the files it produced (model signing, ECDSA P-256)
- ``release``    promotion signs the approved bytes and their approvals (ECDSA P-256)
- ``serving``    rollout signs the serving records the gateway serves by (ECDSA P-256)
- ``audit``      the audit trail signs its records (Ed25519)

A role lists one or more keys, each a ``key_file`` (relative to the keys directory, where
``govdeploy keys init`` writes development keys) or an inline PEM ``public_key``, with optional dates
(ISO 8601 with a time zone) that make rotation possible:

- ``valid_from``   the key signs nothing, and verifies nothing, dated before it
- ``retired_at``   the key signs nothing from then on; it keeps verifying what it signed before
                   (``govdeploy keys rotate`` sets it on the old key and ``valid_from`` on the new one)
- ``valid_until``  the key is trusted for nothing from then on, not even what it signed before

A key without dates signs and verifies at any time (configs written before rotation keep working).
To stop trusting a compromised key at once, remove its entry: retiring only stops new signatures.
A role without a key that may sign now is a configuration error: it fails closed, it never
verifies by default.

``keys_due`` lists the keys that sign now and are older than a rotation age (the policy's
``keys.rotation_days``); ``dump_trust`` writes a config back, keeping the file's leading comments.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, model_validator

from govdeploy.config.files import StrictModel, load_yaml, parse_model
from govdeploy.errors import ConfigError

Role = Literal["candidate", "release", "serving", "audit"]
ROLES: tuple[Role, ...] = ("candidate", "release", "serving", "audit")
DATES = ("valid_from", "retired_at", "valid_until")


def _before(earlier: datetime | None, later: datetime | None) -> bool:
    return earlier is None or later is None or earlier < later


class KeyDates(StrictModel):
    """The dates of a pinned key (trusted role keys and approvers' keys alike); see the module
    docstring for what each means."""

    valid_from: AwareDatetime | None = None
    retired_at: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None

    @model_validator(mode="after")
    def _dates_in_order(self) -> KeyDates:
        if not _before(self.valid_from, self.valid_until):
            raise ValueError(f"valid_from {self.valid_from} is not before valid_until {self.valid_until}")
        if not _before(self.valid_from, self.retired_at):
            raise ValueError(f"valid_from {self.valid_from} is not before retired_at {self.retired_at}")
        if self.retired_at and self.valid_until and self.valid_until < self.retired_at:
            raise ValueError(
                f"retired_at {self.retired_at} is after valid_until {self.valid_until}: a key is retired "
                "before (or when) it stops being trusted"
            )
        return self

    def signs_at(self, moment: datetime) -> bool:
        """Whether the key may sign at ``moment`` (and so whether material signed then verifies)."""
        return (
            (self.valid_from is None or self.valid_from <= moment)
            and (self.retired_at is None or moment < self.retired_at)
            and (self.valid_until is None or moment < self.valid_until)
        )

    def trusted_at(self, moment: datetime) -> bool:
        """Whether the key verifies anything at ``moment``: retired keys do, for what they signed."""
        return (self.valid_from is None or self.valid_from <= moment) and (
            self.valid_until is None or moment < self.valid_until
        )

    def retired(self, moment: datetime) -> bool:
        return self.retired_at is not None and self.retired_at <= moment

    def why_not(self, moment: datetime) -> str:
        """Why the key may not sign at ``moment`` (empty when it may)."""
        when = moment.isoformat(timespec="seconds")
        if self.valid_from is not None and moment < self.valid_from:
            return f"dated {when}, before the key's valid_from {self.valid_from.isoformat()}"
        if self.retired_at is not None and self.retired_at <= moment:
            return (
                f"dated {when}, after the key was retired at {self.retired_at.isoformat()}: a retired "
                "key signs nothing new"
            )
        if self.valid_until is not None and self.valid_until <= moment:
            return f"dated {when}, after the key's valid_until {self.valid_until.isoformat()}"
        return ""

    def dates(self) -> KeyDates:
        """Only the dates (what an evidence pack carries beside a public key)."""
        return KeyDates(valid_from=self.valid_from, retired_at=self.retired_at, valid_until=self.valid_until)


class TrustedKey(KeyDates):
    key_file: str | None = None
    public_key: str | None = None

    @model_validator(mode="after")
    def _one_key(self) -> TrustedKey:
        if (self.key_file is None) == (self.public_key is None):
            raise ValueError("give exactly one of key_file and public_key (inline PEM)")
        if self.key_file is not None and (
            Path(self.key_file).is_absolute() or ".." in Path(self.key_file).parts
        ):
            raise ValueError(f"key_file {self.key_file!r} must be relative to the keys directory")
        return self

    @property
    def name(self) -> str:
        return self.key_file or "inline public_key"


class TrustConfig(StrictModel):
    roles: dict[Role, list[TrustedKey]]

    @model_validator(mode="after")
    def _every_role(self) -> TrustConfig:
        for role in ROLES:
            if not self.roles.get(role):
                raise ValueError(f"role {role!r} lists no trusted key; add at least one under roles.{role}")
        return self

    def keys(self, role: Role, at: datetime | None = None) -> list[TrustedKey]:
        """The role's keys that may sign at ``at`` (now); ConfigError when there is none."""
        moment = at or datetime.now(UTC)
        valid = [key for key in self.roles[role] if key.signs_at(moment)]
        if not valid:
            listed = ", ".join(key.name for key in self.roles[role])
            when = moment.isoformat(timespec="seconds")
            raise ConfigError(
                f"no trusted {role} key is valid at {when} (listed: {listed}); "
                f"add a current key under roles.{role} in trust.yaml"
            )
        return valid

    def verifying(
        self, role: Role, now: datetime | None = None, signed_at: datetime | None = None
    ) -> list[TrustedKey]:
        """The role's keys a signature may verify under ``now``, those that may sign first.

        With ``signed_at`` (material that carries a signed time) only the keys that could sign at that
        time; without it (model-signing bundles carry none) every key trusted now, retired ones
        included: they keep verifying what they signed, and sign nothing new."""
        moment = now or datetime.now(UTC)
        trusted = [key for key in self.roles[role] if key.trusted_at(moment)]
        if signed_at is not None:
            trusted = [key for key in trusted if key.signs_at(signed_at)]
        return sorted(trusted, key=lambda key: key.retired(moment))


def load_trust(path: Path) -> TrustConfig:
    return parse_model(TrustConfig, load_yaml(path, "trusted keys"), path, "trusted keys")


@dataclass(frozen=True)
class DueKey:
    """A key that signs now and is due for rotation: older than the rotation age, or of unknown age."""

    role: Role
    key: str
    since: datetime | None  # valid_from, else when it was made (None: unknown)
    age_days: int | None

    @property
    def reason(self) -> str:
        if self.since is None:
            return (
                f"the {self.role} key {self.key} has no valid_from and no known creation time: its age "
                f"is unknown; rotate it ('govdeploy keys rotate --role {self.role}')"
            )
        return (
            f"the {self.role} key {self.key} signs since {self.since.isoformat(timespec='seconds')} "
            f"({self.age_days} days); rotate it ('govdeploy keys rotate --role {self.role}')"
        )


def keys_due(
    trust: TrustConfig,
    now: datetime,
    max_age_days: int,
    created: Callable[[TrustedKey], datetime | None] = lambda key: None,
) -> list[DueKey]:
    """The keys that may sign at ``now`` and started ``max_age_days`` or more ago (``valid_from``,
    else ``created(key)``, e.g. a development key file's time), or whose start is unknown."""
    due = []
    for role in ROLES:
        for key in trust.roles[role]:
            if not key.signs_at(now):
                continue
            since = key.valid_from or created(key)
            if since is None:
                due.append(DueKey(role, key.name, None, None))
            elif now - since >= timedelta(days=max_age_days):
                due.append(DueKey(role, key.name, since, (now - since).days))
    return due


def _entry_lines(key: TrustedKey) -> list[str]:
    if key.key_file is not None:
        lines = [f"    - key_file: {json.dumps(key.key_file)}"]
    else:
        pem = (key.public_key or "").strip().splitlines()
        lines = ["    - public_key: |", *(f"        {line}" for line in pem)]
    for name in DATES:
        value = getattr(key, name)
        if value is not None:
            lines.append(f'      {name}: "{value.isoformat()}"')
    return lines


def dump_trust(config: TrustConfig, header: str = "") -> str:
    """``config`` as trust.yaml text, after ``header`` (the comment lines a file starts with)."""
    lines = [line for line in header.splitlines() if line.startswith("#")] + ["roles:"]
    for role, keys in config.roles.items():
        lines.append(f"  {role}:")
        for key in keys:
            lines += _entry_lines(key)
    return "\n".join(lines) + "\n"


def header_of(text: str) -> str:
    """The comment lines a trust.yaml text starts with."""
    found = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        found.append(line)
    return "\n".join(found)
