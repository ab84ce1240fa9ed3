"""OSV advisory records (https://ossf.github.io/osv-schema/): which package versions they affect,
how severe they are, and which version fixes them.

A package version is affected by a record when an ``affected`` entry names its package (ecosystem
``PyPI``, names compared after PEP 503 normalisation) and lists the version in ``versions`` or falls
in one of its ``ECOSYSTEM`` or ``SEMVER`` ranges. A range is read as the OSV schema says: its events
in version order, ``introduced`` opens it, ``fixed`` closes it at that version, ``last_affected``
closes it after that version. Versions are compared with ``packaging.version``; a range whose
events cannot be read as versions counts as affecting every version (fail closed). ``GIT`` ranges
name commits and are not evaluated. Withdrawn records affect nothing.

The severity is the highest rating found among the record's ``database_specific.severity`` (the
rating of GitHub's advisory database: LOW, MODERATE, HIGH, CRITICAL), those of its ``affected``
entries, and the CVSS vectors of its ``severity`` lists (``govdeploy.release.cvss``); None when it
has none of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict, Field

from govdeploy.config.policy import SEVERITIES, Severity
from govdeploy.release.cvss import base_score, rating

ECOSYSTEM = "PyPI"
EVALUATED_RANGES = ("ECOSYSTEM", "SEMVER")
_RATINGS: dict[str, Severity] = {
    "LOW": "LOW",
    "MODERATE": "MEDIUM",
    "MEDIUM": "MEDIUM",
    "HIGH": "HIGH",
    "IMPORTANT": "HIGH",
    "CRITICAL": "CRITICAL",
}


class _Lenient(BaseModel):
    """OSV objects carry more fields than the gate reads: those are ignored, not refused."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class OsvSeverity(_Lenient):
    type: str
    score: str


class OsvEvent(_Lenient):
    introduced: str | None = None
    fixed: str | None = None
    last_affected: str | None = None
    limit: str | None = None


class OsvRange(_Lenient):
    type: str
    events: list[OsvEvent] = Field(default_factory=list)


class OsvPackage(_Lenient):
    ecosystem: str
    name: str


class OsvAffected(_Lenient):
    package: OsvPackage | None = None
    severity: list[OsvSeverity] = Field(default_factory=list)
    ranges: list[OsvRange] = Field(default_factory=list)
    versions: list[str] = Field(default_factory=list)
    ecosystem_specific: dict[str, Any] | None = None
    database_specific: dict[str, Any] | None = None


class OsvRecord(_Lenient):
    id: str = Field(min_length=1)
    summary: str = ""
    details: str = ""
    aliases: list[str] = Field(default_factory=list)
    withdrawn: str | None = None
    severity: list[OsvSeverity] = Field(default_factory=list)
    affected: list[OsvAffected] = Field(default_factory=list)
    database_specific: dict[str, Any] | None = None


@dataclass(frozen=True)
class Match:
    """A record that affects one package version."""

    record: OsvRecord
    package: str
    version: str
    severity: Severity | None
    fixed: str | None  # the first version that fixes it, if one is known
    note: str = ""  # how the match was made, when not from a readable range

    @property
    def names(self) -> set[str]:
        return {self.record.id, *self.record.aliases}


def normalize(name: str) -> str:
    """A PyPI project name in PEP 503 normal form."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _rated(value: object) -> Severity | None:
    return _RATINGS.get(value.strip().upper()) if isinstance(value, str) else None


def severity(record: OsvRecord, affected: OsvAffected | None = None) -> Severity | None:
    """The highest rating of the record (and of ``affected``); None when it carries none."""
    found: list[Severity | None] = []
    entries = [affected] if affected else []
    for specific in [record.database_specific, *(e.database_specific for e in entries)]:
        found.append(_rated((specific or {}).get("severity")))
    found += [_rated((e.ecosystem_specific or {}).get("severity")) for e in entries]
    for scored in [*record.severity, *(s for e in entries for s in e.severity)]:
        score = base_score(scored.score)
        found.append(rating(score) if score is not None else None)
    ratings = [r for r in found if r is not None]
    return max(ratings, key=SEVERITIES.index) if ratings else None


def _version(text: str) -> Version:
    return Version(text)


def _in_range(version: Version, events: list[OsvEvent]) -> tuple[bool, str | None]:
    """Whether ``version`` lies in the range, and the first ``fixed`` above it (InvalidVersion when an
    event is not a version)."""
    points = []
    for event in events:
        for kind in ("introduced", "fixed", "last_affected"):
            raw = getattr(event, kind)
            if raw is not None:
                points.append((_version(raw), kind, raw))
    affected = False
    for point, kind, _ in sorted(points, key=lambda p: p[0]):
        if kind == "introduced" and version >= point:
            affected = True
        elif (kind == "fixed" and version >= point) or (kind == "last_affected" and version > point):
            affected = False
    fixes = sorted((p, raw) for p, kind, raw in points if kind == "fixed" and p > version)
    return affected, fixes[0][1] if fixes else None


def _listed(version: str, listed: list[str]) -> bool:
    if version in listed:
        return True
    try:
        wanted = _version(version)
        return any(_version(v) == wanted for v in listed if _parses(v))
    except InvalidVersion:
        return False


def _parses(text: str) -> bool:
    try:
        _version(text)
    except InvalidVersion:
        return False
    return True


def _affects(entry: OsvAffected, version: str) -> tuple[bool, str | None, str]:
    """(affected, fixed version, note) of one ``affected`` entry for ``version``."""
    listed = _listed(version, entry.versions)
    fixed: str | None = None
    for span in entry.ranges:
        if span.type not in EVALUATED_RANGES:
            continue
        try:
            inside, fix = _in_range(_version(version), span.events)
        except InvalidVersion as exc:
            return True, None, f"its {span.type} range cannot be compared with {version} ({exc})"
        fixed = fixed or fix
        if inside:
            return True, fix, ""
    return listed, fixed, "listed among its affected versions" if listed else ""


def matches(record: OsvRecord, package: str, version: str) -> Match | None:
    """How ``record`` affects ``package`` ``version`` (PyPI), or None when it does not."""
    if record.withdrawn:
        return None
    wanted = normalize(package)
    for entry in record.affected:
        if entry.package is None or entry.package.ecosystem.casefold() != ECOSYSTEM.casefold():
            continue
        if normalize(entry.package.name) != wanted:
            continue
        affected, fixed, note = _affects(entry, version)
        if affected:
            return Match(record, package, version, severity(record, entry), fixed, note)
    return None


def packages_of(record: OsvRecord) -> set[str]:
    """The normalised PyPI names ``record`` has ``affected`` entries for."""
    return {
        normalize(e.package.name)
        for e in record.affected
        if e.package is not None and e.package.ecosystem.casefold() == ECOSYSTEM.casefold()
    }
