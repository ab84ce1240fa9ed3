"""The vulnerability gate's evidence: the candidate's SBOM scanned against OSV advisories.

The SBOM is the CycloneDX document training signed with the model (``governance/sbom.cdx.json``),
read only from a download whose every file verified at candidate level. Each PyPI component (name
and version) is looked up in the policy's source (``gates.vulnerabilities``): the mirror file, or
OSV's API. An advisory that affects a component version (``govdeploy.release.osv``) is a finding;
it blocks the release when its severity — or, unrated, the policy's ``unrated_as`` — is at or above
``max_severity`` and the policy does not ignore it (an ignore entry names the advisory or one of its
aliases, with a reason, and lapses after its ``until`` day).

Fail closed: when the advisories cannot be read (an unreachable API with ``when_unreachable: fail``,
a missing or malformed mirror) or the candidate carries no readable SBOM, the scan records why and
the gate fails; nothing is reported as scanned that was not.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, Field

from govdeploy.config.policy import SEVERITIES, Severity, VulnerabilityGate
from govdeploy.errors import ConfigError, GateError
from govdeploy.release.advisories import load_mirror, query_api
from govdeploy.release.osv import Match, OsvRecord, matches, severity
from govdeploy.trust.roots import TrustRoots
from govdeploy.trust.versions import verified_directory

SBOM_FILE = "governance/sbom.cdx.json"


class Finding(BaseModel):
    """One advisory that affects one package version of the candidate."""

    advisory: str
    aliases: list[str] = Field(default_factory=list)
    package: str
    version: str
    severity: Severity | None  # None: the advisory carries no rating
    counted_as: Severity
    fixed: str | None
    summary: str = ""
    blocking: bool
    ignored: str | None = None  # the policy's reason, when an ignore entry covers it
    note: str = ""

    @property
    def reason(self) -> str:
        also = f" ({', '.join(self.aliases[:3])})" if self.aliases else ""
        rated = self.severity or f"unrated, counted as {self.counted_as}"
        fix = (
            f"fixed in {self.fixed}: upgrade {self.package} to {self.fixed} or later"
            if self.fixed
            else "no fixed version is known: remove or replace the package, or ignore the advisory in "
            "the policy with a reason"
        )
        about = f": {self.summary}" if self.summary else ""
        note = f" ({self.note})" if self.note else ""
        subject = f"{self.advisory}{also} affects {self.package} {self.version}"
        return f"{subject}, severity {rated}{about}{note}; {fix}"


class VulnerabilityScan(BaseModel):
    """What the scan found, against which source; ``error`` when it could not scan (the gate fails)."""

    source: str
    max_severity: Severity
    packages: int = 0
    findings: list[Finding] = Field(default_factory=list)
    error: str | None = None
    fallback: str | None = None  # why the mirror was scanned instead of the API

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.blocking]


def sbom_packages(sbom: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, version) of every PyPI component of a CycloneDX SBOM (nested ones included); a component
    without a package URL counts as PyPI, one of another type is left out."""
    found: set[tuple[str, str]] = set()
    pending = list(sbom.get("components") or [])
    while pending:
        component = pending.pop()
        pending += component.get("components") or []
        purl, name, version = component.get("purl"), component.get("name"), component.get("version")
        if isinstance(name, str) and isinstance(version, str) and (not purl or purl.startswith("pkg:pypi/")):
            found.add((name, version))
    return sorted(found)


def read_sbom(path: Path) -> dict[str, Any]:
    try:
        sbom = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GateError(f"the candidate carries no SBOM ({SBOM_FILE}); train it again") from None
    except (OSError, ValueError) as exc:
        raise GateError(f"the candidate's SBOM {SBOM_FILE} cannot be read as JSON ({exc})") from None
    if not isinstance(sbom, dict) or sbom.get("bomFormat") != "CycloneDX":
        raise GateError(f"the candidate's {SBOM_FILE} is not a CycloneDX SBOM")
    return sbom


def _api_match(record: OsvRecord, package: str, version: str, api: str) -> Match:
    """A record the API found: as this module reads it, else as the API says (it evaluates more)."""
    return matches(record, package, version) or Match(
        record, package, version, severity(record), None, f"affected according to {api}"
    )


def _judge(found: list[Match], policy: VulnerabilityGate, today: date) -> list[Finding]:
    findings = []
    for match in found:
        counted = match.severity or policy.unrated_as
        ignore = next(
            (e for e in policy.ignore if e.id in match.names and (e.until is None or today <= e.until)), None
        )
        at_or_above = SEVERITIES.index(counted) >= SEVERITIES.index(policy.max_severity)
        findings.append(
            Finding(
                advisory=match.record.id,
                aliases=match.record.aliases,
                package=match.package,
                version=match.version,
                severity=match.severity,
                counted_as=counted,
                fixed=match.fixed,
                summary=match.record.summary[:200],
                blocking=at_or_above and ignore is None,
                ignored=ignore.reason if ignore else None,
                note=match.note,
            )
        )
    return sorted(findings, key=lambda f: (not f.blocking, -SEVERITIES.index(f.counted_as), f.advisory))


def _from_mirror(packages: list[tuple[str, str]], path: Path) -> tuple[list[Match], str]:
    mirror = load_mirror(path)
    found = [
        m for name, version in packages for r in mirror.advisories(name) if (m := matches(r, name, version))
    ]
    return found, f"mirror {path} (sha256 {mirror.digest[:16]}, {mirror.count} advisories)"


def _from_api(
    packages: list[tuple[str, str]], policy: VulnerabilityGate, client: httpx.Client
) -> list[Match]:
    api = policy.api_url.rstrip("/")
    answered = query_api(packages, api, client)
    return [
        _api_match(r, name, version, api) for (name, version), records in answered.items() for r in records
    ]


def scan(
    sbom: dict[str, Any],
    policy: VulnerabilityGate,
    base: Path,
    client: httpx.Client | None = None,
    today: date | None = None,
) -> VulnerabilityScan:
    """Scan the SBOM's packages against the policy's source (a relative ``file`` is under ``base``)."""
    packages = sbom_packages(sbom)
    mirror = base / policy.file if policy.file else None
    result = VulnerabilityScan(source=policy.source, max_severity=policy.max_severity, packages=len(packages))
    try:
        if policy.source == "osv-api":
            try:
                with nullcontext(client) if client else httpx.Client(timeout=policy.timeout_seconds) as http:
                    found, result.source = _from_api(packages, policy, http), f"OSV API {policy.api_url}"
            except GateError as exc:
                if policy.when_unreachable != "file" or mirror is None:
                    raise GateError(
                        f"{exc}: the candidate's dependencies were not scanned, so the gate fails; scan a "
                        "mirror instead with gates.vulnerabilities.when_unreachable: file"
                    ) from None
                result.fallback = str(exc)
                found, result.source = _from_mirror(packages, mirror)
        elif mirror is None:  # the policy's validation requires a file for source: file
            raise ConfigError("gates.vulnerabilities has source: file but no file")
        else:
            found, result.source = _from_mirror(packages, mirror)
    except (GateError, ConfigError) as exc:
        result.error = str(exc)
        return result
    result.findings = _judge(found, policy, today or datetime.now(UTC).date())
    return result


def scan_version(
    name: str,
    version: str,
    *,
    roots: TrustRoots,
    tracking_uri: str,
    policy: VulnerabilityGate,
    base: Path,
    client: httpx.Client | None = None,
) -> VulnerabilityScan:
    """Scan the SBOM the candidate's verified files carry (SignatureError when they do not verify)."""
    with verified_directory(name, version, roots=roots, level="candidate", tracking_uri=tracking_uri) as (
        directory,
        _,
    ):
        try:
            sbom = read_sbom(directory / SBOM_FILE)
        except GateError as exc:
            return VulnerabilityScan(source=policy.source, max_severity=policy.max_severity, error=str(exc))
        return scan(sbom, policy, base, client)
