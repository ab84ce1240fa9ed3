"""Typed settings of one govdeploy process, read from ``GOVDEPLOY_*`` environment variables.

Nothing is read at import time: call ``get_settings()``. Every server of the local stack listens
on a loopback address; ports are configurable so that several stacks (tests, a developer's UI
session) can run side by side.
"""

from __future__ import annotations

import getpass
import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    """Where the local stack lives and how clients reach it."""

    # an empty variable (``GOVDEPLOY_USER=`` in an env file) means "use the default", not ""
    model_config = SettingsConfigDict(env_prefix="GOVDEPLOY_", extra="ignore", env_ignore_empty=True)

    state_dir: Path = Field(
        default=PROJECT_ROOT / ".govdeploy",
        description="Databases, logs and pid files of the local stack (never committed).",
    )
    config_dir: Path = Field(default=PROJECT_ROOT / "config", description="Policy-as-code and identities.")
    host: str = Field(default="127.0.0.1", description="Loopback address every server binds to.")
    s3_port: int = Field(default=9900, ge=1024, le=65535)
    mlflow_port: int = Field(default=5050, ge=1024, le=65535)
    prefect_port: int = Field(default=4200, ge=1024, le=65535)
    bucket: str = Field(default="govdeploy-artifacts", min_length=3, max_length=63)
    experiment: str = Field(default="govdeploy", min_length=1)
    user: str = Field(
        default_factory=getpass.getuser,
        min_length=1,
        description="Identity recorded as submitter of what this process trains or releases.",
    )
    start_timeout: float = Field(default=90.0, gt=0, description="Seconds a server may take.")
    dependency_timeout_seconds: int = Field(
        default=10,
        ge=1,
        description="Connect and read timeout of one request to MLflow or S3; with the retries, a dead "
        "dependency fails a call within seconds instead of minutes.",
    )
    dependency_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries of a failed request to MLflow, S3 or Prefect (short backoff) before the call "
        "fails; operators' MLFLOW_HTTP_REQUEST_*, AWS_MAX_ATTEMPTS and PREFECT_CLIENT_MAX_RETRIES win.",
    )
    candidate_key: Path | None = Field(
        default=None, description="PEM private key that signs candidates (default: <keys>/candidate.key)."
    )
    release_key: Path | None = Field(
        default=None, description="PEM private key that signs releases (default: <keys>/release.key)."
    )
    serving_key: Path | None = Field(
        default=None, description="PEM private key that signs serving records (default: <keys>/serving.key)."
    )
    audit_public_key: Path | None = Field(
        default=None,
        description="PEM Ed25519 public key that 'audit verify' checks records under, pinned outside "
        "the state directory (default, on the local emulator only: <keys>/audit.pub, reported as unpinned).",
    )
    alert_webhook: str | None = Field(default=None, description="URL that receives alerts as JSON.")
    gateway_port: int = Field(default=8080, ge=1024, le=65535)
    max_body_bytes: int = Field(default=1_048_576, gt=0, description="Larger request bodies get 413.")
    max_rows_per_request: int = Field(default=1000, gt=0)
    batch_max_rows: int = Field(default=64, gt=0, description="Rows the gateway scores in one model call.")
    batch_max_wait_ms: float = Field(default=2.0, ge=0, description="How long a batch waits for more rows.")
    refresh_seconds: float = Field(default=2.0, gt=0, description="How often the gateway polls the registry.")
    refresh_max_missed: int = Field(
        default=5,
        ge=1,
        description="The gateway's health check fails when no serving-state refresh succeeded for this "
        "many refresh periods, or the last one failed.",
    )
    io_log_failure: Literal["refuse", "degrade"] = Field(
        default="refuse",
        description="When I/O records cannot be written (or the writer falls behind): 'refuse' answers "
        "predictions 503; 'degrade' answers them without durable records. Both alert.",
    )
    io_log_max_queued: int = Field(
        default=20_000,
        gt=0,
        description="I/O records waiting to be written before predictions are refused; records of other "
        "responses may use as many again, beyond which they are lost (counted and alerted).",
    )
    io_log_stall_seconds: float = Field(
        default=10.0, gt=0, description="An I/O record waiting this long to be written: the log is stalled."
    )
    io_backlog_max_batches: int = Field(
        default=500, ge=0, description="More I/O log batches waiting to be shipped: the gateway is unhealthy."
    )
    io_backlog_max_age_seconds: float = Field(
        default=900.0, gt=0, description="An I/O log batch waiting this long to be shipped: it is unhealthy."
    )
    io_ship_retry_max_seconds: float = Field(
        default=60.0, gt=0, description="Longest wait between two tries to ship an I/O log batch."
    )
    max_control_body_bytes: int = Field(
        default=16_384, gt=0, description="Larger bodies to kill, revive, reload and the read routes get 413."
    )
    body_timeout_seconds: float = Field(
        default=30.0, gt=0, description="A request body not received within this time gets 408."
    )
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="A connection without complete request headers in time is closed."
    )
    keep_alive_seconds: int = Field(
        default=5, gt=0, description="Idle keep-alive connections of the gateway are closed after this."
    )
    anonymous_rate_limit_per_minute: int = Field(
        default=60, gt=0, description="Requests without a valid API key, per client address (then 429)."
    )
    rows_per_rate_limit_request: int = Field(
        default=100,
        gt=0,
        description="A prediction or feedback costs one request of the rate limit per this many rows.",
    )
    gateway_docs: bool = Field(
        default=False, description="Serve /docs and /openapi.json, without a key (development only)."
    )

    @field_validator("host")
    @classmethod
    def _loopback_only(cls, value: str) -> str:
        if value != "localhost" and not ipaddress.ip_address(value).is_loopback:
            raise ValueError(
                f"host {value!r} is not a loopback address; the local stack listens on "
                "127.0.0.1 (or another 127.x address) only"
            )
        return value

    @field_validator("state_dir", "config_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def s3_url(self) -> str:
        return f"http://{self.host}:{self.s3_port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    @property
    def prefect_ui_url(self) -> str:
        return f"http://{self.host}:{self.prefect_port}"

    @property
    def prefect_api_url(self) -> str:
        return f"{self.prefect_ui_url}/api"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.host}:{self.gateway_port}"

    @property
    def access_path(self) -> Path:
        return self.config_dir / "access.yaml"

    @property
    def keys_dir(self) -> Path:
        return self.state_dir / "keys"

    @property
    def trust_path(self) -> Path:
        return self.config_dir / "trust.yaml"

    @property
    def audit_log_path(self) -> Path:
        return self.state_dir / "audit" / "audit.jsonl"

    @property
    def approvers_path(self) -> Path:
        return self.config_dir / "approvers.yaml"

    @property
    def policy_path(self) -> Path:
        return self.config_dir / "policy.yaml"

    @property
    def models_path(self) -> Path:
        return self.config_dir / "models.yaml"

    @property
    def expectations_dir(self) -> Path:
        return self.config_dir / "expectations"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process, read once from the environment."""
    return Settings()
