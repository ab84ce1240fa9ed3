"""Trusted public keys by role, ``config/trust.yaml``: the pinned roots of every signature.

Each role signs one kind of statement and a signature verifies only under its own role's keys:

- ``candidate``  training signs the files it produced (model signing, ECDSA P-256)
- ``release``    promotion signs the approved bytes and their approvals (ECDSA P-256)
- ``serving``    rollout signs the serving records the gateway serves by (ECDSA P-256)
- ``audit``      the audit trail signs its records (Ed25519)

A role lists one or more keys, each a ``key_file`` (relative to the keys directory, where
``govdeploy keys init`` writes development keys) or an inline PEM ``public_key``, with an optional
validity window (``valid_from``/``valid_until``, ISO 8601 with a time zone) so that a new key can be
added before an old one is retired. A role without a key valid now is a configuration error: it
fails closed, it never verifies by default.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, model_validator

from govdeploy.config.files import StrictModel, load_yaml, parse_model
from govdeploy.errors import ConfigError

Role = Literal["candidate", "release", "serving", "audit"]
ROLES: tuple[Role, ...] = ("candidate", "release", "serving", "audit")


class TrustedKey(StrictModel):
    key_file: str | None = None
    public_key: str | None = None
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None

    @model_validator(mode="after")
    def _one_key(self) -> TrustedKey:
        if (self.key_file is None) == (self.public_key is None):
            raise ValueError("give exactly one of key_file and public_key (inline PEM)")
        if self.key_file is not None and (
            Path(self.key_file).is_absolute() or ".." in Path(self.key_file).parts
        ):
            raise ValueError(f"key_file {self.key_file!r} must be relative to the keys directory")
        if self.valid_from and self.valid_until and self.valid_from >= self.valid_until:
            raise ValueError(f"valid_from {self.valid_from} is not before valid_until {self.valid_until}")
        return self

    def valid_at(self, moment: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= moment) and (
            self.valid_until is None or moment < self.valid_until
        )

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
        """The role's keys valid at ``at`` (now); ConfigError when there is none."""
        moment = at or datetime.now(UTC)
        valid = [key for key in self.roles[role] if key.valid_at(moment)]
        if not valid:
            listed = ", ".join(key.name for key in self.roles[role])
            when = moment.isoformat(timespec="seconds")
            raise ConfigError(
                f"no trusted {role} key is valid at {when} (listed: {listed}); "
                f"add a current key under roles.{role} in trust.yaml"
            )
        return valid


def load_trust(path: Path) -> TrustConfig:
    return parse_model(TrustConfig, load_yaml(path, "trusted keys"), path, "trusted keys")
