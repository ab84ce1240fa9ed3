"""The compliance report: each check with its status and evidence, and the run's exit code.

Statuses: ``pass``; ``fail`` (the deployment breaks a rule: exit 1); ``error`` (the check could not
run, e.g. a file or the bucket could not be read: exit 2 when nothing failed); ``skip`` (not
applicable here, with why). A check that raises is an ``error`` naming the exception, never a crash
of the run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from govdeploy.config.settings import Settings
from govdeploy.errors import ConfigError

Status = Literal["pass", "fail", "error", "skip"]
EXIT_CODES = {"pass": 0, "fail": 1, "error": 2}


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, status, one line of why, and the evidence it saw."""

    name: str
    status: Status
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)


Check = Callable[["Context"], CheckResult]


@dataclass(frozen=True)
class Context:
    """What the checks read: the settings (config and state directories, keys, bucket), the moment,
    and the options of the run."""

    settings: Settings
    now: datetime
    expiry_days: int = 30  # a key whose valid_until is this close is reported
    stack: bool = False  # the bucket and the registry are reachable and checked


@dataclass(frozen=True)
class ComplianceReport:
    checked_at: str
    checks: list[CheckResult]

    @property
    def status(self) -> Literal["pass", "fail", "error"]:
        statuses = {check.status for check in self.checks}
        return "fail" if "fail" in statuses else "error" if "error" in statuses else "pass"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    @property
    def digest(self) -> str:
        """SHA-256 of the report's JSON: the audit record names the report it summarises."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked_at": self.checked_at,
            "status": self.status,
            "checks": [asdict(c) for c in self.checks],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=True, default=str)

    def failures(self) -> list[str]:
        return [f"{c.name}: {c.summary}" for c in self.checks if c.status in ("fail", "error")]


def run_one(check: Check, context: Context) -> CheckResult:
    """The check's result; a config file it finds invalid (ConfigError) is a ``fail``, any other
    exception an ``error`` naming it."""
    name = getattr(check, "check_name", check.__name__)
    try:
        return check(context)
    except ConfigError as exc:
        return CheckResult(name, "fail", str(exc))
    except Exception as exc:  # any failure to check is reported, never a crash of the run
        return CheckResult(name, "error", f"could not run: {type(exc).__name__}: {exc}")


def run_checks(context: Context, checks: Sequence[Check]) -> ComplianceReport:
    """Run every check in order into one report."""
    moment = context.now.astimezone(UTC).isoformat(timespec="seconds")
    return ComplianceReport(moment, [run_one(check, context) for check in checks])


def named(name: str) -> Callable[[Check], Check]:
    """Give a check function the name its result carries (also when it raises)."""

    def mark(check: Check) -> Check:
        check.check_name = name  # type: ignore[attr-defined]
        return check

    return mark
