"""Access control of the gateway, ``config/access.yaml``: principals, roles, API keys, rate limits.

API keys are never stored: the configuration holds only their SHA-256 digests, inline
(``key_sha256``) or in a file relative to the keys directory (``key_sha256_file``; ``govdeploy keys
init`` creates development keys). ``KeyRing`` maps a presented key to its principal, comparing
digests in constant time; ``RateLimiter`` enforces each principal's requests per minute, and a
limit per client address on requests without a valid key.
"""

from __future__ import annotations

import hashlib
import hmac
import math
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
MAX_ADDRESSES = 100_000  # client addresses tracked at once (requests without a valid key)


@dataclass
class _TokenBucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets, per principal and per client address of requests without a valid key.

    Capacity = per-minute limit / 60 * burst seconds (``burst_seconds``, 1.0 by default, for
    principals; ``address_burst_seconds``, 10.0, for client addresses; at least one token); the
    refill is continuous. A request needs one token. A heavier request (a batch of many
    rows) pays the rest of its cost with ``charge`` once its size is known: the bucket may go into
    debt, and the principal's next requests wait until it refilled. A refusal says how many seconds
    to wait (``Retry-After``).

    Behind one load balancer, ``share`` replicas enforce each limit together: each admits its part
    (1/share, at least one a minute), so the sum holds when clients are spread evenly.

    At most ``max_addresses`` client addresses are tracked: buckets that refilled are forgotten
    first (at most one sweep a second), and while every tracked address is still limited a new one
    is refused as well.
    """

    def __init__(
        self,
        burst_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = MAX_ADDRESSES,
        address_burst_seconds: float = 10.0,
        share: int = 1,
    ) -> None:
        if share < 1:
            raise ValueError(f"share must be at least 1, got {share!r}")
        self._share = share
        if not burst_seconds > 0:
            raise ValueError(f"burst_seconds must be positive, got {burst_seconds!r}")
        if not address_burst_seconds > 0:
            raise ValueError(f"address_burst_seconds must be positive, got {address_burst_seconds!r}")
        self._burst_seconds = burst_seconds
        self._address_burst = address_burst_seconds
        self._clock = clock
        self._buckets: dict[str, _TokenBucket] = {}
        self._addresses: dict[str, _TokenBucket] = {}
        self._max_addresses = max_addresses
        self._swept = -math.inf  # when the addresses were last swept for idle ones
        self._lock = threading.Lock()

    def _part(self, per_minute: int) -> int:
        """This replica's part of a limit that ``share`` replicas enforce together."""
        return max(1, math.ceil(per_minute / self._share))

    def _capacity(self, per_minute: int, burst_seconds: float | None = None) -> float:
        return max(1.0, per_minute / 60 * (burst_seconds or self._burst_seconds))

    def capacity(self, principal: Principal) -> float:
        """The most requests ``principal`` may make at once (here)."""
        return self._capacity(self._part(principal.rate_limit_per_minute))

    def _refilled(
        self, bucket: _TokenBucket, per_minute: int, now: float, burst: float | None = None
    ) -> _TokenBucket:
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(self._capacity(per_minute, burst), bucket.tokens + elapsed * per_minute / 60)
        bucket.updated = max(bucket.updated, now)
        return bucket

    def _take(self, bucket: _TokenBucket, per_minute: int, now: float, burst: float | None = None) -> float:
        """Take one token: 0.0, or the seconds until the bucket holds one again."""
        self._refilled(bucket, per_minute, now, burst)
        if bucket.tokens < 1.0 - _EPSILON:  # tolerate rounding of the continuous refill
            return (1.0 - bucket.tokens) * 60 / per_minute
        bucket.tokens -= 1.0
        return 0.0

    def admit(self, principal: Principal) -> float:
        """Take one request of ``principal``: 0.0 when admitted, else the seconds to wait."""
        per_minute = self._part(principal.rate_limit_per_minute)
        with self._lock:
            now = self._clock()
            bucket = self._buckets.setdefault(principal.id, _TokenBucket(self._capacity(per_minute), now))
            return self._take(bucket, per_minute, now)

    def allow(self, principal: Principal) -> bool:
        """Take one token from the principal's bucket; False when it is empty."""
        return self.admit(principal) == 0.0

    def charge(self, principal: Principal, cost: float) -> None:
        """Take ``cost`` more tokens from an admitted request of ``principal`` (the bucket may owe them)."""
        if cost <= 0:
            return
        per_minute = self._part(principal.rate_limit_per_minute)
        with self._lock:
            now = self._clock()
            bucket = self._buckets.setdefault(principal.id, _TokenBucket(self._capacity(per_minute), now))
            self._refilled(bucket, per_minute, now).tokens -= cost

    def admit_address(self, address: str, per_minute: int) -> float:
        """Take one request without a valid key from ``address``: 0.0, or the seconds to wait."""
        per_minute = self._part(per_minute)
        with self._lock:
            now = self._clock()
            bucket = self._addresses.get(address)
            if bucket is None:
                if len(self._addresses) >= self._max_addresses:
                    self._forget_idle(per_minute, now)
                if len(self._addresses) >= self._max_addresses:
                    return 60 / per_minute
                capacity = self._capacity(per_minute, self._address_burst)
                bucket = self._addresses[address] = _TokenBucket(capacity, now)
            return self._take(bucket, per_minute, now, self._address_burst)

    def _forget_idle(self, per_minute: int, now: float) -> None:
        """Forget the addresses whose buckets refilled (once a second at most)."""
        if now - self._swept < 1.0:
            return
        self._swept = now
        burst = self._address_burst
        full = self._capacity(per_minute, burst) - _EPSILON
        buckets = self._addresses.items()
        idle = [a for a, b in buckets if self._refilled(b, per_minute, now, burst).tokens >= full]
        for address in idle:
            del self._addresses[address]
