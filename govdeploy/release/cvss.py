"""CVSS base scores from vectors (v3.0/v3.1 and v2), and the qualitative rating of a score.

OSV records carry CVSS as a vector (``CVSS:3.1/AV:N/AC:L/...``), not as a number: the base score is
computed here with the formulas of the CVSS v3.1 and v2 specifications. CVSS v4 vectors are not
scored (their score needs the specification's lookup tables): ``base_score`` returns None for them,
as for anything it cannot read, and the caller decides what an unscored advisory counts as.
"""

from __future__ import annotations

import math

from govdeploy.config.policy import Severity

_V3 = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}
_V3_PR = {"U": {"N": 0.85, "L": 0.62, "H": 0.27}, "C": {"N": 0.85, "L": 0.68, "H": 0.5}}
_V2 = {
    "AV": {"L": 0.395, "A": 0.646, "N": 1.0},
    "AC": {"H": 0.35, "M": 0.61, "L": 0.71},
    "Au": {"M": 0.45, "S": 0.56, "N": 0.704},
    "C": {"N": 0.0, "P": 0.275, "C": 0.660},
    "I": {"N": 0.0, "P": 0.275, "C": 0.660},
    "A": {"N": 0.0, "P": 0.275, "C": 0.660},
}


def _metrics(vector: str) -> dict[str, str]:
    parts = [part.split(":", 1) for part in vector.strip().split("/") if part]
    return {part[0]: part[1] for part in parts if len(part) == 2}


def _roundup(value: float) -> float:
    """CVSS v3.1's Roundup: the smallest number of one decimal at or above ``value``."""
    scaled = round(value * 100_000)
    return scaled / 100_000.0 if scaled % 10_000 == 0 else (math.floor(scaled / 10_000) + 1) / 10.0


def _v3(metrics: dict[str, str]) -> float:
    scope = metrics["S"]
    weights = {name: _V3[name][metrics[name]] for name in _V3}
    privileges = _V3_PR[scope][metrics["PR"]]
    iss = 1 - (1 - weights["C"]) * (1 - weights["I"]) * (1 - weights["A"])
    impact = 6.42 * iss if scope == "U" else 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15
    exploitability = 8.22 * weights["AV"] * weights["AC"] * privileges * weights["UI"]
    if impact <= 0:
        return 0.0
    total = impact + exploitability if scope == "U" else 1.08 * (impact + exploitability)
    return _roundup(min(total, 10.0))


def _v2(metrics: dict[str, str]) -> float:
    weights = {name: _V2[name][metrics[name]] for name in _V2}
    impact = 10.41 * (1 - (1 - weights["C"]) * (1 - weights["I"]) * (1 - weights["A"]))
    exploitability = 20 * weights["AV"] * weights["AC"] * weights["Au"]
    factor = 0.0 if impact == 0 else 1.176
    return round((0.6 * impact + 0.4 * exploitability - 1.5) * factor, 1)


def base_score(vector: str) -> float | None:
    """The base score of a CVSS v3.x or v2 vector (or a plain number); None for v4 or anything
    unreadable."""
    try:
        number = float(vector)
    except ValueError:
        pass
    else:
        return number if 0.0 <= number <= 10.0 else None
    metrics = _metrics(vector)
    try:
        if metrics.get("CVSS") in ("3.0", "3.1"):
            return _v3(metrics)
        if "CVSS" not in metrics and "Au" in metrics:
            return _v2(metrics)
    except KeyError:  # a metric missing or with a value the specification does not define
        return None
    return None


def rating(score: float) -> Severity | None:
    """The qualitative rating of a base score (CVSS v3.1 table, for v2 scores too: stricter, v2 has no
    CRITICAL); None for 0.0 (no impact)."""
    if score >= 9.0:
        return "CRITICAL"
    if score >= 7.0:
        return "HIGH"
    if score >= 4.0:
        return "MEDIUM"
    return "LOW" if score > 0.0 else None
