"""The policy gate: evaluation evidence in, one pass/fail check per policy rule out.

Each check carries the value, the threshold and a plain-language reason. The gate's report
records the digest of the policy that made the decision.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from govdeploy.config.policy import Policy
from govdeploy.errors import PolicyGateError
from govdeploy.release.evaluation import ModelEvaluation
from govdeploy.release.validation import ValidationReport
from govdeploy.release.vulnerabilities import VulnerabilityScan


class Check(BaseModel):
    gate: str
    name: str
    value: str
    threshold: str
    passed: bool
    reason: str


class GateReport(BaseModel):
    """The decision of the release gate for one model version."""

    model: str
    version: str
    policy_digest: str
    checks: list[Check]
    decided_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def summary(self) -> str:
        if self.passed:
            return f"{self.model} v{self.version} passed all {len(self.checks)} gate checks"
        reasons = "; ".join(check.reason for check in self.failures)
        return f"{self.model} v{self.version} failed {len(self.failures)} gate check(s): {reasons}"


def validation_check(report: ValidationReport) -> Check:
    return Check(
        gate="data_validation",
        name=f"suite {report.suite}",
        value=f"{report.evaluated - len(report.failed)}/{report.declared} expectations met, "
        f"{report.rows} rows",
        threshold="all expectations met",
        passed=report.passed,
        reason="evaluation data meets its expectation suite" if report.passed else "; ".join(report.problems),
    )


def performance_checks(policy: Policy, evaluation: ModelEvaluation) -> list[Check]:
    checks = []
    for metric, minimum in policy.gates.performance.minimums.items():
        value = evaluation.metrics.get(metric, float("nan"))
        ok = not math.isnan(value) and value >= minimum
        checks.append(
            Check(
                gate="performance",
                name=f"{metric} minimum",
                value=f"{value:.4f}",
                threshold=f">= {minimum}",
                passed=ok,
                reason=f"{metric} is {value:.4f}, "
                + ("at or above" if ok else "below")
                + f" the minimum {minimum}",
            )
        )
    return checks


def regression_checks(
    policy: Policy,
    candidate: ModelEvaluation,
    champion: ModelEvaluation | None,
    champion_version: str | None,
) -> list[Check]:
    if champion is None:
        return []
    checks = []
    for metric, allowed in policy.gates.performance.max_regression.items():
        new, old = (
            candidate.metrics.get(metric, float("nan")),
            champion.metrics.get(metric, float("nan")),
        )
        drop = old - new
        ok = not math.isnan(drop) and drop <= allowed
        checks.append(
            Check(
                gate="champion",
                name=f"{metric} vs champion v{champion_version}",
                value=f"{new:.4f} (champion {old:.4f})",
                threshold=f"drop <= {allowed}",
                passed=ok,
                reason=f"{metric} is {new:.4f} against the champion's {old:.4f}"
                + ("" if ok else f", a drop of {drop:.4f} beyond the allowed {allowed}"),
            )
        )
    return checks


def fairness_checks(policy: Policy, evaluation: ModelEvaluation) -> list[Check]:
    rules = policy.gates.fairness
    found = {result.attribute: result for result in evaluation.fairness}
    checks = []
    for attribute, limits in rules.attributes.items():
        result = found.get(attribute)
        if result is None:
            checks.append(
                Check(
                    gate="fairness",
                    name=f"{attribute} evaluated",
                    value="missing",
                    threshold="present",
                    passed=False,
                    reason=f"sensitive attribute {attribute!r} was not evaluated; add it to the "
                    "model's sensitive_attributes and to the evaluation data",
                )
            )
            continue
        smallest = min(result.group_size.values())
        checks.append(
            Check(
                gate="fairness",
                name=f"{attribute} group sizes",
                value=str(result.group_size),
                threshold=f">= {rules.min_group_size} per group",
                passed=smallest >= rules.min_group_size,
                reason=f"smallest {attribute} group has {smallest} rows"
                + (
                    ""
                    if smallest >= rules.min_group_size
                    else f", too few to judge (need {rules.min_group_size})"
                ),
            )
        )
        for label, value, limit in (
            (
                "demographic parity difference",
                result.demographic_parity_difference,
                limits.max_demographic_parity_difference,
            ),
            (
                "equalized odds difference",
                result.equalized_odds_difference,
                limits.max_equalized_odds_difference,
            ),
        ):
            ok = value <= limit
            checks.append(
                Check(
                    gate="fairness",
                    name=f"{attribute} {label}",
                    value=f"{value:.4f}",
                    threshold=f"<= {limit}",
                    passed=ok,
                    reason=f"{label} across {attribute} is {value:.4f}, "
                    + ("within" if ok else "over")
                    + f" the limit {limit} "
                    f"(selection rates {result.selection_rate})",
                )
            )
    return checks


def privacy_checks(evaluation: ModelEvaluation) -> list[Check]:
    checks = []
    for kind, name in (
        ("forbidden_feature", "no forbidden features"),
        ("pii_value", "no PII in feature values"),
    ):
        found = [f for f in evaluation.privacy if f.kind == kind]
        checks.append(
            Check(
                gate="privacy",
                name=name,
                value=str(len(found)),
                threshold="0",
                passed=not found,
                reason="; ".join(f.detail for f in found) if found else f"{name}: none found",
            )
        )
    return checks


def vulnerability_checks(scan: VulnerabilityScan) -> list[Check]:
    """One check that the SBOM was scanned (failed when it could not be), one failed check per
    advisory at or above the policy's severity."""
    threshold = f"no advisory at or above {scan.max_severity}"
    if scan.error is not None:
        return [
            Check(
                gate="vulnerabilities",
                name="dependencies scanned",
                value="not scanned",
                threshold=threshold,
                passed=False,
                reason=scan.error,
            )
        ]
    ignored = [f for f in scan.findings if f.ignored]
    below = [f for f in scan.findings if not f.blocking and not f.ignored]
    reason = f"{scan.packages} packages scanned against {scan.source}"
    if scan.fallback:
        reason += f" (the advisory service could not be reached: {scan.fallback})"
    reason += "".join(f"; below {scan.max_severity}: {f.reason}" for f in below[:5])
    reason += "".join(f"; ignored by the policy ({f.ignored}): {f.reason}" for f in ignored[:5])
    summary = Check(
        gate="vulnerabilities",
        name="dependencies scanned",
        value=f"{scan.packages} packages, {len(scan.blocking)} blocking, {len(below)} below "
        f"{scan.max_severity}, {len(ignored)} ignored",
        threshold=threshold,
        passed=True,
        reason=reason,
    )
    return [summary] + [
        Check(
            gate="vulnerabilities",
            name=f"{f.advisory} in {f.package} {f.version}",
            value=f.counted_as if f.severity else f"{f.counted_as} (unrated)",
            threshold=f"below {scan.max_severity}",
            passed=False,
            reason=f.reason,
        )
        for f in scan.blocking
    ]


def decide(
    policy: Policy,
    model: str,
    version: str,
    validation: ValidationReport,
    candidate: ModelEvaluation,
    champion: ModelEvaluation | None = None,
    champion_version: str | None = None,
    digest: str | None = None,
    vulnerabilities: VulnerabilityScan | None = None,
) -> GateReport:
    """Apply every rule of the policy's gates to the evidence; ``digest`` is what the decision records
    (the governance digest; the policy file's own digest by default). A policy with a vulnerability
    gate needs the scan of the candidate's SBOM: without it the gate fails."""
    checks = [
        validation_check(validation),
        *performance_checks(policy, candidate),
        *regression_checks(policy, candidate, champion, champion_version),
        *fairness_checks(policy, candidate),
        *privacy_checks(candidate),
    ]
    gate = policy.gates.vulnerabilities
    if gate is not None:
        checks += vulnerability_checks(
            vulnerabilities
            or VulnerabilityScan(
                source=gate.source,
                max_severity=gate.max_severity,
                error="the policy has a vulnerability gate but the candidate's SBOM was not scanned",
            )
        )
    return GateReport(model=model, version=version, policy_digest=digest or policy.digest, checks=checks)


def require_pass(report: GateReport) -> None:
    """Raise PolicyGateError with the plain-language reasons of every failed check."""
    if not report.passed:
        raise PolicyGateError(report.summary() + f" (policy {report.policy_digest[:12]})")


def validation_only(
    policy: Policy, model: str, version: str, validation: ValidationReport, digest: str | None = None
) -> GateReport:
    """The decision when data validation already failed: nothing else is evaluated on bad data."""
    return GateReport(
        model=model,
        version=version,
        policy_digest=digest or policy.digest,
        checks=[validation_check(validation)],
    )
