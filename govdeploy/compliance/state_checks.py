"""Checks of the deployment's state: signing keys due for rotation or near expiry, I/O log data kept
past retention, and (with the stack) the evidence of every version that serves.

A development key file that is not on this machine (a CI checkout has no keys directory) has no
age to judge here: it is listed as skipped, not due.
"""

from __future__ import annotations

from datetime import timedelta

from govdeploy.compliance.report import CheckResult, Context, named
from govdeploy.config.catalog import load_catalog
from govdeploy.config.policy import load_policy
from govdeploy.config.trust import ROLES, DueKey, load_trust
from govdeploy.errors import ApprovalError, CryptoError, RegistryError, SignatureError
from govdeploy.monitoring.retention import overdue
from govdeploy.trust.rotation import rotation_due

# what a serving version's evidence failing to verify raises (others: the check could not run)
EVIDENCE_ERRORS = (SignatureError, CryptoError, ApprovalError, RegistryError)


@named("keys.rotation")
def key_rotation(context: Context) -> CheckResult:
    """Keys that sign now and are past the policy's ``keys.rotation_days`` (``rotation_due``)."""
    keys_dir = context.settings.keys_dir
    due: list[DueKey] = []
    absent: list[DueKey] = []
    for key in rotation_due(context.settings, context.now):
        local_file = (
            key.since is None and key.key != "inline public_key" and not (keys_dir / key.key).exists()
        )
        (absent if local_file else due).append(key)
    evidence = {
        "due": [{"role": k.role, "key": k.key, "age_days": k.age_days, "reason": k.reason} for k in due],
        "key_files_not_here": [f"{k.role}: {keys_dir / k.key}" for k in absent],
    }
    if due:
        return CheckResult("keys.rotation", "fail", "; ".join(k.reason for k in due), evidence)
    if absent:
        return CheckResult(
            "keys.rotation",
            "skip",
            f"{len(absent)} key files are not in {keys_dir}: age not judged here",
            evidence,
        )
    return CheckResult("keys.rotation", "pass", "no signing key is due for rotation", evidence)


@named("keys.expiry")
def key_expiry(context: Context) -> CheckResult:
    """Keys trusted now whose ``valid_until`` falls within ``expiry_days``: renew or rotate them first."""
    trust = load_trust(context.settings.trust_path)
    horizon = context.now + timedelta(days=context.expiry_days)
    near = [
        f"the {role} key {key.name} is trusted until {key.valid_until.isoformat(timespec='seconds')}"
        for role in ROLES
        for key in trust.roles[role]
        if key.trusted_at(context.now) and key.valid_until is not None and key.valid_until <= horizon
    ]
    evidence = {"within_days": context.expiry_days, "expiring": near}
    if near:
        return CheckResult(
            "keys.expiry", "fail", f"{'; '.join(near)}: rotate before then (govdeploy keys rotate)", evidence
        )
    return CheckResult(
        "keys.expiry", "pass", f"no trusted key expires within {context.expiry_days} days", evidence
    )


@named("retention.overdue")
def retention_overdue(context: Context) -> CheckResult:
    """I/O log days past ``retention.io_log_days`` still present: locally, and with the stack in the
    bucket (``govdeploy retention enforce`` deletes them)."""
    policy = load_policy(context.settings.policy_path)
    report = overdue(context.settings, policy, context.now, bucket=context.stack)
    present = [d for d in report.deleted if d.count or d.delete_markers]
    evidence = {
        "io_log_days": report.io_log_days,
        "first_kept_day": report.first_kept_day,
        "bucket_checked": report.bucket_checked,
        "overdue": [{"where": d.where, "day": d.day, "count": d.count, "bytes": d.bytes} for d in present],
        "locked_keys": report.locked_keys[:20],
        "problems": report.problems,
    }
    if present:
        days = sorted({f"{d.where} {d.day}" for d in present})
        summary = f"I/O log data past {report.io_log_days} days is still present ({', '.join(days)})"
        return CheckResult(
            "retention.overdue", "fail", f"{summary}: run govdeploy retention enforce", evidence
        )
    if report.problems:
        return CheckResult("retention.overdue", "error", "; ".join(report.problems), evidence)
    where = "local spool and bucket" if report.bucket_checked else "local spool (bucket not checked)"
    return CheckResult("retention.overdue", "pass", f"nothing past retention in the {where}", evidence)


@named("serving.evidence")
def serving_evidence(context: Context) -> CheckResult:
    """Each serving champion and challenger re-verifies at release level (every file against its
    signed manifest, and its approvals); the newest signed serving record names them."""
    if not context.stack:
        return CheckResult("serving.evidence", "skip", "the registry is not checked (give --registry)")
    from govdeploy.serving.rollout import serving_now
    from govdeploy.trust.roots import load_roots
    from govdeploy.trust.versions import verify_version

    settings = context.settings
    roots = load_roots(settings)
    verified: dict[str, str] = {}
    failures: dict[str, str] = {}
    for model in sorted(load_catalog(settings.models_path).models):
        try:
            record = serving_now(settings, model)
        except SignatureError as exc:
            failures[model] = f"serving record: {exc}"
            continue
        for role, version in (
            ("champion", record and record.champion),
            ("challenger", record and record.challenger),
        ):
            if not version:
                continue
            where = f"{model} v{version} ({role})"
            try:
                check = verify_version(
                    model, version, roots=roots, level="release", tracking_uri=settings.mlflow_url
                )
            except EVIDENCE_ERRORS as exc:
                failures[where] = str(exc)
                continue
            verified[where] = check.artifact_digest
    evidence = {"verified": verified, "failures": failures}
    if failures:
        return CheckResult(
            "serving.evidence", "fail", "; ".join(f"{w}: {p}" for w, p in failures.items()), evidence
        )
    return CheckResult("serving.evidence", "pass", f"{len(verified)} serving versions verify", evidence)
