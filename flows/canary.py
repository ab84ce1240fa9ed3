"""The ``canary`` flow: traffic to the challenger in policy steps, judged live, rolled back on breach."""

from __future__ import annotations

from typing import Any

from prefect import flow

from govdeploy.errors import RolloutError
from tasks.audit import audit_event
from tasks.canary import complete, observe_step, require_challenger, roll_back_canary
from tasks.governance import load_config


@flow(name="canary", log_prints=True)
def canary(model: str, version: str, bake_seconds: float | None = None) -> dict[str, Any]:
    """Move traffic to a promoted challenger step by step; champion on success, rollback on breach.

    Args:
        model: Registered model name.
        version: The challenger version (the signed serving record must name it challenger).
        bake_seconds: Bake less than the policy's time per step (never longer).
    """
    version = str(version)
    # Stage 1: policy and the versions involved
    config = load_config(model)
    policy = config.policy.canary
    champion = require_challenger(model, version)
    bake = min(float(policy.bake_seconds), bake_seconds or float(policy.bake_seconds))
    retention = config.policy.retention.audit_days

    def audit(action: str, payload: dict[str, Any]) -> None:
        audit_event(
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
        roll_back_canary(model, version, [reason])
        audit(
            "canary.aborted", {"reason": reason, "steps": [s["weight"] for s in steps], "champion": champion}
        )
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


if __name__ == "__main__":
    import sys

    print(canary(sys.argv[1], sys.argv[2]))
