"""Access control of the gateway, ``config/access.yaml``: principals, roles, API keys, rate limits.

API keys are never stored: the configuration holds only their SHA-256 digests, inline
(``key_sha256``) or in a file relative to the keys directory (``key_sha256_file``; ``govdeploy keys
init`` creates development keys). ``KeyRing`` maps a presented key to its principal, comparing
digests in constant time; ``RateLimiter`` enforces each principal's requests per minute.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

from pydantic import Field, PositiveInt, StringConstraints, field_validator, model_validator

from govdeploy.config.files import StrictModel, load_yaml, parse_model
from govdeploy.errors import ConfigError

Role = Literal["predict", "deployer", "auditor"]
PrincipalId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]

_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


class PrincipalSpec(StrictModel):
    roles: list[Role] = Field(min_length=1)
    rate_limit_per_minute: PositiveInt = 600
    key_sha256: str | None = None
    key_sha256_file: str | None = None

    @field_validator("key_sha256")
    @classmethod
    def _hex_digest(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256_HEX.fullmatch(value):
            raise ValueError("must be the SHA-256 hex digest of the API key (64 hex characters)")
        return value.lower() if value is not None else None

    @field_validator("key_sha256_file")
    @classmethod
    def _relative_path(cls, value: str | None) -> str | None:
        if value is not None:
            parts = PurePosixPath(value).parts
            if not parts or value.startswith(("/", "\\")) or ".." in parts:
                raise ValueError("must be a path inside the keys directory, like api/<id>.sha256")
        return value

    @model_validator(mode="after")
    def _one_key(self) -> PrincipalSpec:
        if (self.key_sha256 is None) == (self.key_sha256_file is None):
            raise ValueError("give exactly one of key_sha256 (inline hex digest) and key_sha256_file")
        return self


class AccessConfig(StrictModel):
    principals: dict[PrincipalId, PrincipalSpec] = Field(min_length=1)


def load_access(path: Path) -> AccessConfig:
    return parse_model(AccessConfig, load_yaml(path, "access"), path, "access")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller of the gateway."""

    id: str
    roles: frozenset[str]
    rate_limit_per_minute: int


class KeyRing:
    """Maps API keys (by SHA-256, constant-time compare via hmac.compare_digest) to principals."""

    def __init__(self, entries: list[tuple[bytes, Principal]]) -> None:
        self._entries = list(entries)

    @classmethod
    def from_config(cls, config: AccessConfig, keys_dir: Path) -> KeyRing:
        """The key ring of a config; digest files are read from ``keys_dir``."""
        entries: list[tuple[bytes, Principal]] = []
        owners: dict[bytes, str] = {}
        for principal_id, spec in config.principals.items():
            digest = bytes.fromhex(_configured_digest(principal_id, spec, keys_dir))
            if digest in owners:
                raise ConfigError(
                    f"principals {owners[digest]!r} and {principal_id!r} have the same API key digest; "
                    "give each principal its own key"
                )
            owners[digest] = principal_id
            principal = Principal(principal_id, frozenset(spec.roles), spec.rate_limit_per_minute)
            entries.append((digest, principal))
        return cls(entries)

    def authenticate(self, api_key: str | None) -> Principal | None:
        """The principal holding ``api_key``, or None for a missing or unknown key."""
        if not api_key:
            return None
        digest = hashlib.sha256(api_key.encode("utf-8", errors="surrogatepass")).digest()
        found: Principal | None = None
        for known, principal in self._entries:  # no early exit: the time does not depend on the match
            if hmac.compare_digest(digest, known):
                found = principal
        return found


def _configured_digest(principal_id: str, spec: PrincipalSpec, keys_dir: Path) -> str:
    if spec.key_sha256 is not None:
        return spec.key_sha256
    path = keys_dir / str(spec.key_sha256_file)
    what = f"API key digest of principal {principal_id!r}"
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(
            f"{what} {path} does not exist; create development keys with 'govdeploy keys init'"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc}") from exc
    if not _SHA256_HEX.fullmatch(text):
        raise ConfigError(
            f"{what} {path} must hold the SHA-256 hex digest of the key (64 hex characters); "
            "recreate it with 'govdeploy keys init'"
        )
    return text.lower()


_EPSILON = 1e-9


@dataclass
class _TokenBucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token bucket per principal: capacity = rate_limit_per_minute/60 * burst_seconds (burst_seconds=1.0
    default, at least 1 token), refill continuous."""

    def __init__(self, burst_seconds: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        if not burst_seconds > 0:
            raise ValueError(f"burst_seconds must be positive, got {burst_seconds!r}")
        self._burst_seconds = burst_seconds
        self._clock = clock
        self._buckets: dict[str, _TokenBucket] = {}
        self._lock = threading.Lock()

    def capacity(self, principal: Principal) -> float:
        """The most requests ``principal`` may make at once."""
        return max(1.0, principal.rate_limit_per_minute / 60 * self._burst_seconds)

    def allow(self, principal: Principal) -> bool:
        """Take one token from the principal's bucket; False when it is empty."""
        capacity = self.capacity(principal)
        per_second = principal.rate_limit_per_minute / 60
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(principal.id)
            if bucket is None:
                bucket = self._buckets[principal.id] = _TokenBucket(tokens=capacity, updated=now)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(capacity, bucket.tokens + elapsed * per_second)
            bucket.updated = max(bucket.updated, now)
            if bucket.tokens < 1.0 - _EPSILON:  # tolerate rounding of the continuous refill
                return False
            bucket.tokens -= 1.0
            return True
