"""Policy-as-code: the typed model of ``config/policy.yaml`` and its loader.

The policy holds every threshold a decision depends on. Each decision records ``Policy.digest``,
the SHA-256 of the policy file's bytes, so the policy that made it can be found again.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from govdeploy.config.files import StrictModel, file_digest, load_yaml, parse_model

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveInt = Annotated[int, Field(gt=0)]

PERFORMANCE_METRICS = ("accuracy", "roc_auc", "f1", "precision", "recall")
PiiPattern = Literal["email", "phone", "ssn", "credit_card", "iban"]
PII_PATTERNS: tuple[PiiPattern, ...] = ("email", "phone", "ssn", "credit_card", "iban")


class DataValidationGate(StrictModel):
    """Data validation with a Great Expectations suite from config/expectations/."""

    suite: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    min_rows: PositiveInt = 100


class PerformanceGate(StrictModel):
    """Metric minimums, and the largest drop allowed against the current champion."""

    minimums: dict[str, Fraction] = Field(min_length=1)
    max_regression: dict[str, Fraction] = Field(default_factory=dict)

    @field_validator("minimums", "max_regression")
    @classmethod
    def _known_metrics(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(PERFORMANCE_METRICS))
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; use some of {list(PERFORMANCE_METRICS)}")
        return value


class FairnessLimits(StrictModel):
    """Largest disparities allowed between the groups of one sensitive attribute."""

    max_demographic_parity_difference: Fraction
    max_equalized_odds_difference: Fraction


class FairnessGate(StrictModel):
    """Fairness limits per sensitive attribute (fairlearn metrics on the evaluation data)."""

    attributes: dict[str, FairnessLimits] = Field(min_length=1)
    min_group_size: PositiveInt = 30


class PrivacyGate(StrictModel):
    """Columns that hold personal data, columns that must never be features, value scans."""

    pii_columns: list[str] = Field(default_factory=list)
    forbidden_features: list[str] = Field(default_factory=list)
    scan_patterns: list[PiiPattern] = Field(default_factory=lambda: list(PII_PATTERNS))
    scan_rows: PositiveInt = 200


Severity = Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]
SEVERITIES: tuple[Severity, ...] = ("LOW", "MEDIUM", "HIGH", "CRITICAL")


class IgnoredAdvisory(StrictModel):
    """An advisory the vulnerability gate does not block on, with why (and until when)."""

    id: str = Field(min_length=1, max_length=100)  # the advisory's id or one of its aliases (a CVE)
    reason: str = Field(min_length=10, max_length=500)
    until: date | None = None  # from the day after, the advisory blocks again


class VulnerabilityGate(StrictModel):
    """The candidate's SBOM against advisories in OSV format: a known advisory of a package version it
    holds, at or above ``max_severity``, blocks the release.

    ``source: file`` reads ``file`` (an OSV record, a JSON list of them, a directory or a zip of them,
    such as osv.dev's export of the PyPI ecosystem; relative to the policy's directory).
    ``source: osv-api`` asks ``api_url`` (OSV's querybatch API); when it cannot be reached the gate
    fails (``when_unreachable: fail``) or scans ``file`` instead (``when_unreachable: file``).
    An advisory without a severity (neither its database's rating nor a CVSS vector) counts as
    ``unrated_as``.
    """

    source: Literal["file", "osv-api"] = "file"
    file: str | None = None
    api_url: str = Field(default="https://api.osv.dev", pattern=r"^https?://[^\s/]+(/\S*)?$")
    timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0
    when_unreachable: Literal["fail", "file"] = "fail"
    max_severity: Severity = "HIGH"
    unrated_as: Severity = "CRITICAL"
    ignore: list[IgnoredAdvisory] = Field(default_factory=list)

    @model_validator(mode="after")
    def _file_when_needed(self) -> VulnerabilityGate:
        if self.file is None and (self.source == "file" or self.when_unreachable == "file"):
            raise ValueError("give `file` (an OSV advisory file) for source: file or when_unreachable: file")
        ids = [entry.id for entry in self.ignore]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"ignore lists {repeated} more than once; keep one entry each")
        return self


class Gates(StrictModel):
    data_validation: DataValidationGate
    performance: PerformanceGate
    fairness: FairnessGate
    privacy: PrivacyGate
    # absent: the release gate does not scan the candidate's dependencies
    vulnerabilities: VulnerabilityGate | None = None


class ApprovalPolicy(StrictModel):
    """Who must sign off a release, and for how long a flow waits."""

    quorum: PositiveInt = 2
    required_roles: list[str] = Field(default_factory=list)
    statement_expiry_minutes: PositiveInt = 60
    timeout_minutes: PositiveInt = 60
    # a candidate whose submitter is not proven by a signed submission: refuse its release, or
    # require one approver more than the quorum
    unproven_submission: Literal["refuse", "extra_approval"] = "extra_approval"
    # how far in the future a statement or submission may be dated (clocks of signers drift)
    clock_skew_seconds: Annotated[int, Field(ge=0, le=600)] = 120


class CanaryPolicy(StrictModel):
    """Traffic steps of a canary release and the limits that trigger a rollback.

    With ``enabled`` false, promotion moves the ``champion`` alias directly; with it true, it
    moves ``challenger`` and the canary flow decides.
    """

    enabled: bool = False
    steps: list[Annotated[int, Field(gt=0, le=100)]] = Field(default_factory=lambda: [5, 25, 50, 100])
    bake_seconds: PositiveInt = 60
    min_requests: PositiveInt = 100
    max_error_rate_increase: Fraction = 0.02
    max_latency_p95_ratio: Annotated[float, Field(ge=1.0)] = 1.5
    latency_p95_floor_ms: Annotated[float, Field(ge=0)] = 100.0
    max_prediction_shift: Fraction = 0.1

    @property
    def stale_after_seconds(self) -> float:
        """Age past which a canary record with challenger traffic has nobody judging it: a step bakes
        for ``bake_seconds`` and is judged within two more, plus two minutes of slack. Past it,
        canary-watch ends the canary and every gateway serves the champion only."""
        return 3.0 * self.bake_seconds + 120.0

    @field_validator("steps")
    @classmethod
    def _increasing_to_100(cls, value: list[int]) -> list[int]:
        if not value or value != sorted(set(value)) or value[-1] != 100:
            raise ValueError(f"steps {value} must strictly increase and end at 100")
        return value


class DriftPolicy(StrictModel):
    """Nightly drift check: schedule, window and what counts as drift or a performance drop."""

    schedule: str = "0 2 * * *"
    window_hours: PositiveInt = 24
    min_rows: PositiveInt = 500
    max_drifted_share: Fraction = 0.3
    max_performance_drop: Fraction = 0.05
    min_labelled_rows: PositiveInt = 200

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _cron(value)


def _cron(value: str) -> str:
    if len(value.split()) != 5:
        raise ValueError(f"schedule {value!r} is not a 5-field cron expression, e.g. '0 2 * * *'")
    return value


class AlertsPolicy(StrictModel):
    """Real-time anomaly alerts of the gateway, judged per model and version over a sliding window.

    A rate is judged once the window holds ``min_requests`` prediction responses; above its limit,
    the gateway alerts (webhook and Prefect event), at most once per ``dedup_seconds`` per
    model, version and kind.
    """

    window_seconds: PositiveInt = 60
    min_requests: PositiveInt = 50
    max_out_of_range_rate: Fraction = 0.05
    low_confidence_margin: Annotated[float, Field(ge=0.0, le=0.5)] = 0.1
    max_low_confidence_rate: Fraction = 0.5
    max_error_rate: Fraction = 0.05
    dedup_seconds: PositiveInt = 300


class RetentionPolicy(StrictModel):
    """How long evidence is kept, and when the nightly ``compliance`` flow deletes the I/O log's days
    past ``io_log_days`` and runs the compliance checks."""

    audit_days: PositiveInt = 2555
    io_log_days: PositiveInt = 90
    schedule: str = "0 3 * * *"

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return _cron(value)


class KeysPolicy(StrictModel):
    """Signing keys: how old a key that still signs may be before it is due for rotation."""

    rotation_days: Annotated[int, Field(gt=0, le=3650)] = 365


class Policy(StrictModel):
    """The whole policy file."""

    version: Literal[1]
    gates: Gates
    approval: ApprovalPolicy = ApprovalPolicy()
    canary: CanaryPolicy = CanaryPolicy()
    drift: DriftPolicy = DriftPolicy()
    alerts: AlertsPolicy = AlertsPolicy()
    retention: RetentionPolicy = RetentionPolicy()
    # `keys:` in the file; not an attribute named `keys`, which would make the policy look like a
    # mapping to code that calls dict() on models (Prefect does, on task inputs)
    signing_keys: KeysPolicy = Field(default_factory=KeysPolicy, alias="keys")

    _digest: str = PrivateAttr(default="")
    _path: str = PrivateAttr(default="")

    @model_validator(mode="after")
    def _pii_never_features(self) -> Policy:
        missing = sorted(set(self.gates.privacy.pii_columns) - set(self.gates.privacy.forbidden_features))
        if missing:
            raise ValueError(
                f"gates.privacy.pii_columns {missing} must also be listed in "
                "gates.privacy.forbidden_features: personal data is never a feature"
            )
        return self

    @property
    def digest(self) -> str:
        """SHA-256 of the policy file this was loaded from."""
        return self._digest

    @property
    def path(self) -> str:
        return self._path


def load_policy(path: Path) -> Policy:
    """Load and validate a policy file; raise ConfigError naming file, key and fix."""
    policy = parse_model(Policy, load_yaml(path, "policy"), path, "policy")
    policy._digest = file_digest(path)
    policy._path = str(path)
    return policy
