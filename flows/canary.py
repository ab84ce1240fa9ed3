"""The ``canary`` flow: traffic to the challenger in policy steps, judged live, rolled back on breach."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from prefect import flow

from govdeploy.backends.locks import model_change
from govdeploy.config.governance import Governance
from govdeploy.errors import RolloutError
from govdeploy.trust.audit import AuditRecord
from tasks.audit import audit_event
from tasks.canary import (
    alert_orphan,
    complete,
    find_orphan,
    observe_step,
    require_challenger,
    require_champion,
    roll_back_canary,
)
from tasks.governance import catalogued_models, load_config

# how long a change waits for the one before it (a canary holds the lock for all its steps)
CHANGE_WAIT_SECONDS = 900.0
T = TypeVar("T")


@flow(name="canary", log_prints=True)
def canary(model: str, version: str, bake_seconds: float | None = None) -> dict[str, Any]:
    """Move traffic to a promoted challenger step by step; champion on success, rollback on breach.

    Args:
        model: Registered model name.
        version: The challenger version (the signed serving record must name it challenger).
        bake_seconds: Bake less than the policy's time per step (never longer).
    """
    version = str(version)
    # Stage 1: policy and the versions involved; one change of the model's serving at a time
    config = load_config(model)
    with model_change(model, "canary", CHANGE_WAIT_SECONDS):
        return _steps(model, version, bake_seconds, config)


def _steps(model: str, version: str, bake_seconds: float | None, config: Governance) -> dict[str, Any]:
    policy = config.policy.canary
    champion = require_challenger(model, version)
    bake = min(float(policy.bake_seconds), bake_seconds or float(policy.bake_seconds))
    retention = config.policy.retention.audit_days

    def audit(action: str, payload: dict[str, Any], engine: bool = True) -> AuditRecord:
        record = audit_event if engine else audit_event.fn  # .fn: the same work without Prefect
        return record(
            action,
            payload,
            model=model,
            version=version,
            policy_digest=config.digest,
            retention_days=retention,
        )

    # Stage 2: traffic steps, each judged on live gateway metrics; any failure inside a step sends
    # all traffic back to the champion before the run ends
    steps: list[dict[str, Any]] = []
    try:
        for weight in policy.steps:
            verdict = observe_step(model, version, champion, weight, bake, policy)
            steps.append({"weight": weight, "passed": verdict.passed, "reasons": verdict.reasons})
            audit("canary.step", steps[-1])
            if not verdict.passed:
                break
    except Exception as exc:
        reason = f"canary step failed: {type(exc).__name__}: {exc}"
        payload = {"reason": reason, "steps": [s["weight"] for s in steps], "champion": champion}
        fail_safe(model, version, payload, audit)
        raise
    if steps and not steps[-1]["passed"]:
        # Stage 3a: automatic rollback
        weight, reasons = steps[-1]["weight"], steps[-1]["reasons"]
        roll_back_canary(model, version, reasons)
        audit("canary.rolled_back", {"weight": weight, "reasons": reasons, "champion": champion})
        raise RolloutError(f"{model} v{version} rolled back at {weight}%: " + "; ".join(reasons))

    # Stage 3b: the challenger becomes champion
    previous = complete(model, version)
    audit("canary.promoted", {"previous": previous, "steps": [s["weight"] for s in steps]})
    return {"model": model, "version": version, "champion": version, "previous": previous, "steps": steps}


def fail_safe(model: str, version: str, payload: dict[str, Any], audit: Callable[..., AuditRecord]) -> None:
    """After a failed step: announce the abort (``canary.aborting``), abort (the signed serving
    record names the announcement, so a run killed before its last record still leaves both ends in
    the trail) and record it (``canary.aborted``). Each step, when Prefect itself fails, is done again
    without its engine (S3, the trail); an announcement that cannot be written at all does not keep
    the champion from getting all traffic back."""
    reason = payload["reason"]
    intent = _without_engine_if_needed(
        lambda engine: audit("canary.aborting", payload, engine), required=False
    )
    seq = str(intent.seq) if intent else None
    _without_engine_if_needed(
        lambda engine: (roll_back_canary if engine else roll_back_canary.fn)(model, version, [reason], seq)
    )
    _without_engine_if_needed(lambda engine: audit("canary.aborted", payload, engine))


def _without_engine_if_needed(step: Callable[[bool], T], required: bool = True) -> T | None:
    try:
        return step(True)
    except Exception:
        try:
            return step(False)
        except Exception:
            if required:
                raise
            logging.getLogger("govdeploy.canary").exception("the canary abort could not be announced")
            return None


@flow(name="canary-abort", log_prints=True)
def canary_abort(model: str, reason: str = "requested") -> dict[str, Any]:
    """End a canary at once: all traffic back to the champion, the challenger removed.

    Not serialised with other changes: it is the brake. A canary run still live fails at its next
    step (its challenger is gone) and records that.

    Args:
        model: Registered model name.
        reason: Why, for the audit trail.
    """
    config = load_config(model)
    champion = require_champion(model)
    ended = roll_back_canary(model, None, [reason])
    if ended is not None:
        audit_event(
            "canary.aborted",
            {"reason": reason, "champion": champion},
            model=model,
            version=ended,
            policy_digest=config.digest,
            retention_days=config.policy.retention.audit_days,
        )
    return {"model": model, "aborted": ended, "champion": champion}


@flow(name="canary-watch", log_prints=True)
def canary_watch() -> list[dict[str, Any]]:
    """End every orphaned canary: a challenger with traffic that no live canary run judges (its run
    crashed, or its process died mid-step). Scheduled every minute by ``flows/serve.py``."""
    ended = []
    for model in catalogued_models():
        config = load_config(model)
        found = find_orphan(model, config.policy.canary)
        if found is None:
            continue
        challenger, reason = found
        roll_back_canary(model, challenger, [reason])
        audit_event(
            "canary.orphaned",
            {"reason": reason},
            model=model,
            version=challenger,
            policy_digest=config.digest,
            retention_days=config.policy.retention.audit_days,
        )
        alert_orphan(model, reason)
        ended.append({"model": model, "version": challenger, "reason": reason})
    return ended


if __name__ == "__main__":
    import sys

    print(canary(sys.argv[1], sys.argv[2]))
