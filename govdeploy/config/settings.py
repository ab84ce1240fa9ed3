"""Typed settings of one govdeploy process, read from ``GOVDEPLOY_*`` environment variables.

Nothing is read at import time: call ``get_settings()``.

Two profiles say where MLflow, Prefect and S3 are:

- ``local``: govdeploy runs them itself (``govdeploy up``), each on a loopback address and a
  configurable port, so that several stacks (tests, a developer's UI session) can run side by side;
  the URLs are built from ``host`` and the ports. ``database`` puts MLflow and Prefect on SQLite
  files (the default) or on a PostgreSQL server the stack owns.
- ``external``: others run them. The MLflow tracking URI and the Prefect API URL come from the
  clients' own variables ``MLFLOW_TRACKING_URI`` and ``PREFECT_API_URL`` (or from
  ``GOVDEPLOY_MLFLOW_TRACKING_URI`` / ``GOVDEPLOY_PREFECT_API_URL``; two different values are an
  error, never silently resolved); S3 is boto3's default endpoint (AWS) unless
  ``GOVDEPLOY_S3_ENDPOINT_URL`` names another, with credentials from boto3's standard chain.

The profile is ``GOVDEPLOY_PROFILE``, else ``external`` when one of govdeploy's endpoint variables is
set, else ``local``.
"""

from __future__ import annotations

import getpass
import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from govdeploy.config.endpoints import (
    AWS_S3,
    ENDPOINTS,
    aws_endpoint_variable,
    check_local,
    external_url,
    http_url,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]

Profile = Literal["local", "external"]
Database = Literal["sqlite", "postgres"]


class Settings(BaseSettings):
    """Where the stack lives, where its servers are (by profile) and how clients reach them."""

    # an empty variable (``GOVDEPLOY_USER=`` in an env file) means "use the default", not ""
    model_config = SettingsConfigDict(
        env_prefix="GOVDEPLOY_", extra="ignore", env_ignore_empty=True, populate_by_name=True
    )

    state_dir: Path = Field(
        default=PROJECT_ROOT / ".govdeploy",
        description="Databases, logs and pid files of the local stack (never committed).",
    )
    config_dir: Path = Field(default=PROJECT_ROOT / "config", description="Policy-as-code and identities.")
    profile: Profile | None = Field(
        default=None,
        description="'local': govdeploy runs MLflow, Prefect and S3 itself ('govdeploy up'); 'external': "
        "others run them and govdeploy starts none. Empty: 'external' when GOVDEPLOY_MLFLOW_TRACKING_URI, "
        "GOVDEPLOY_PREFECT_API_URL or GOVDEPLOY_S3_ENDPOINT_URL is set, else 'local'.",
    )
    host: str = Field(
        default="127.0.0.1",
        description="Address the servers govdeploy starts bind to: loopback only on the local profile.",
    )
    s3_port: int = Field(default=9900, ge=1024, le=65535)
    mlflow_port: int = Field(default=5050, ge=1024, le=65535)
    prefect_port: int = Field(default=4200, ge=1024, le=65535)
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="External profile: the MLflow tracking server (default: MLFLOW_TRACKING_URI).",
    )
    prefect_api: str | None = Field(
        default=None,
        validation_alias="GOVDEPLOY_PREFECT_API_URL",
        description="External profile: the Prefect API, ending in /api for a Prefect server "
        "(default: PREFECT_API_URL).",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="External profile: an S3-compatible endpoint (default: boto3's, which is AWS unless "
        "AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL says otherwise).",
    )
    s3_region: str | None = Field(
        default=None,
        description="External profile: the bucket's region (default: boto3's chain, e.g. "
        "AWS_DEFAULT_REGION).",
    )
    database: Database | None = Field(
        default=None,
        description="Local profile: where MLflow and Prefect keep their data, 'sqlite' files or a "
        "PostgreSQL server the stack runs under the state directory (default: what the state directory "
        "already holds, sqlite for a new one; 'govdeploy up --db' sets it).",
    )
    postgres_port: int = Field(default=5440, ge=1024, le=65535)
    postgres_bin_dir: Path | None = Field(
        default=None,
        description="Directory with PostgreSQL's initdb and postgres (default: the one of pg_ctl on PATH, "
        "else the newest /usr/lib/postgresql/*/bin).",
    )
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
    gateway_endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="The gateway as flows reach it (a load balancer or Service; default http://HOST:GATEWAY_PORT).",
    )
    gateway_replicas: list[str] = Field(
        default_factory=list,
        description="JSON list of every gateway replica's URL: a canary sums their metrics and a change asks "
        "each to reload (default: the gateway endpoint alone).",
    )
    gateway_replica_count: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="Gateway replicas behind one load balancer: each admits 1/N of every rate limit.",
    )
    gateway_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Worker processes of one gateway, sharing its port (e.g. the machine's cores); each "
        "admits its share of every rate limit, /metrics adds them up.",
    )
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
    def _an_address(cls, value: str) -> str:
        if value != "localhost":
            ipaddress.ip_address(value)
        return value

    @model_validator(mode="after")
    def _endpoints(self) -> Settings:
        """Resolve the profile; on the local one, nothing external; on the external one, every URL."""
        given = [variable for field, (variable, _) in ENDPOINTS.items() if getattr(self, field) is not None]
        if self.profile is None:
            self.profile = "external" if given else "local"
        if self.profile == "local":
            check_local(self.host, given)
            return self
        if self.database is not None:
            raise ValueError(
                f"GOVDEPLOY_DATABASE={self.database} chooses the database of the servers the local profile "
                "runs; on the external profile their operators configure it: unset GOVDEPLOY_DATABASE"
            )
        self.mlflow_tracking_uri = external_url(self.mlflow_tracking_uri, "mlflow_tracking_uri")
        self.prefect_api = external_url(self.prefect_api, "prefect_api")
        if self.s3_endpoint_url is not None:
            self.s3_endpoint_url = http_url(self.s3_endpoint_url, "GOVDEPLOY_S3_ENDPOINT_URL")
        return self

    @field_validator("state_dir", "config_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def local(self) -> bool:
        """The local profile: govdeploy runs MLflow, Prefect and S3 itself."""
        return self.profile != "external"

    @property
    def s3_url(self) -> str:
        """The bucket's endpoint, for messages and probes (boto3 gets ``s3_endpoint``)."""
        if self.local:
            return f"http://{self.host}:{self.s3_port}"
        return self.s3_endpoint_url or aws_endpoint_variable() or AWS_S3

    @property
    def s3_endpoint(self) -> str | None:
        """The endpoint boto3 is given: None leaves it to boto3 (AWS, or its endpoint variables)."""
        return self.s3_url if self.local else self.s3_endpoint_url

    @property
    def s3_region_name(self) -> str | None:
        """The region boto3 is given: None leaves it to boto3's chain."""
        return "us-east-1" if self.local else self.s3_region

    @property
    def mlflow_url(self) -> str:
        if self.local:
            return f"http://{self.host}:{self.mlflow_port}"
        return str(self.mlflow_tracking_uri)

    @property
    def prefect_ui_url(self) -> str:
        if self.local:
            return f"http://{self.host}:{self.prefect_port}"
        return self.prefect_api_url.removesuffix("/api")

    @property
    def prefect_api_url(self) -> str:
        return f"{self.prefect_ui_url}/api" if self.local else str(self.prefect_api)

    @property
    def gateway_url(self) -> str:
        return (self.gateway_endpoint or f"http://{self.host}:{self.gateway_port}").rstrip("/")

    @property
    def gateway_urls(self) -> list[str]:
        """Every gateway replica (the canary reads all of them)."""
        return [url.rstrip("/") for url in self.gateway_replicas] or [self.gateway_url]

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
