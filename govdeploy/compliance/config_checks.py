"""Checks of the configuration: digests of every config file, the policy against each catalogued
model, approver roles against the policy's approval rules, and the gateway's access file.

A file that does not parse or breaks a rule is a ``fail`` naming it (a lint finding); a file that
cannot be read at all is a ``fail`` too, as the deployment cannot run with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from govdeploy.compliance.report import Check, CheckResult, Context, named
from govdeploy.config.approvers import load_approvers
from govdeploy.config.catalog import load_catalog
from govdeploy.config.files import file_digest
from govdeploy.config.governance import load_governance
from govdeploy.config.policy import load_policy
from govdeploy.errors import ConfigError

AccessLoader = Callable[[Any], Any]  # path → the parsed access configuration (``principals``)


@named("config.digests")
def config_digests(context: Context) -> CheckResult:
    """SHA-256 of each file under the config directory: the evidence of what was checked."""
    root = context.settings.config_dir
    if not root.is_dir():
        return CheckResult("config.digests", "error", f"config directory {root} does not exist")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    digests = {str(p.relative_to(root)): file_digest(p) for p in files}
    return CheckResult("config.digests", "pass", f"{len(digests)} files under {root}", {"files": digests})


@named("policy.governance")
def governance(context: Context) -> CheckResult:
    """The policy, catalog entry, suite and approvers load and agree, for every catalogued model."""
    settings = context.settings
    try:
        models = sorted(load_catalog(settings.models_path).models)
    except ConfigError as exc:
        return CheckResult("policy.governance", "fail", str(exc))
    digests: dict[str, str] = {}
    problems: dict[str, str] = {}
    for model in models:
        try:
            digests[model] = load_governance(settings.config_dir, model, settings.policy_path).digest
        except ConfigError as exc:
            problems[model] = str(exc)
    evidence = {"governance_digests": digests, "problems": problems}
    if problems:
        return CheckResult(
            "policy.governance", "fail", "; ".join(f"{m}: {p}" for m, p in problems.items()), evidence
        )
    return CheckResult(
        "policy.governance", "pass", f"{len(models)} catalogued models: {', '.join(models)}", evidence
    )


@named("approvers.roles")
def approver_roles(context: Context) -> CheckResult:
    """Every role the policy requires of approvals is held by an approver, and enough approvers exist
    for the quorum (one more when an unproven submission needs an extra approval)."""
    settings = context.settings
    approval = load_policy(settings.policy_path).approval
    approvers = load_approvers(settings.approvers_path).approvers
    holders = {
        role: sorted(a for a, spec in approvers.items() if role in spec.roles)
        for role in approval.required_roles
    }
    needed = approval.quorum + (1 if approval.unproven_submission == "extra_approval" else 0)
    problems = [
        f"no approver holds the required role {role!r}: give it to an approver in {settings.approvers_path}"
        for role, held in holders.items()
        if not held
    ]
    if len(approvers) < needed:
        problems.append(
            f"{len(approvers)} approvers cannot reach the {needed} approvals a release may need "
            f"(approval.quorum {approval.quorum}"
            + (" + 1 for an unproven submission)" if needed > approval.quorum else ")")
        )
    without = sorted(a for a, spec in approvers.items() if not set(spec.roles) & set(approval.required_roles))
    evidence = {"required_roles": holders, "quorum": approval.quorum, "approvers": sorted(approvers)}
    evidence["approvers_without_a_required_role"] = without
    if problems:
        return CheckResult("approvers.roles", "fail", "; ".join(problems), evidence)
    return CheckResult(
        "approvers.roles", "pass", f"{len(approvers)} approvers; required roles held", evidence
    )


def access_check(load_access: AccessLoader) -> Check:
    """The check of the gateway's access file, parsed by the gateway's own loader (the entry points
    hand it in: the gateway's modules are its own)."""

    @named("access.sanity")
    def access_sanity(context: Context) -> CheckResult:
        path = context.settings.access_path
        try:
            principals = load_access(path).principals
        except ConfigError as exc:
            return CheckResult("access.sanity", "fail", str(exc))
        problems = _shared_keys(principals)
        evidence = {"principals": {p: sorted(spec.roles) for p, spec in sorted(principals.items())}}
        if problems:
            return CheckResult("access.sanity", "fail", "; ".join(problems), evidence)
        return CheckResult(
            "access.sanity", "pass", f"{len(principals)} principals, one API key each", evidence
        )

    return access_sanity


def _shared_keys(principals: dict[str, Any]) -> list[str]:
    """Principals that share one API key (by inline digest or digest file): a key names one caller."""
    problems = []
    for field in ("key_sha256", "key_sha256_file"):
        seen: dict[str, str] = {}
        for principal, spec in sorted(principals.items()):
            value = getattr(spec, field)
            if value is None:
                continue
            if value in seen:
                problems.append(f"principals {seen[value]!r} and {principal!r} share one {field}")
            seen[value] = principal
    return problems


CONFIG_CHECKS: tuple[Check, ...] = (config_digests, governance, approver_roles)
