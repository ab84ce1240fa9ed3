"""The ``canary`` flow: traffic to the challenger in policy steps, judged live, rolled back on breach."""

from __future__ import annotations

from typing import Any

from prefect import flow

from govdeploy.errors import RolloutError
from tasks.audit import audit_event
from tasks.canary import complete, observe_step, require_challenger, roll_back_canary
from tasks.evaluation import current_champion
from tasks.governance import load_config


@flow(name="canary", log_prints=True)
def canary(model: str, version: str, bake_seconds: float | None = None) -> dict[str, Any]:
    """Move traffic to a promoted challenger step by step; champion on success, rollback on breach.

    Args:
        model: Registered model name.
        version: The challenger version (the ``challenger`` alias must point at it).
        bake_seconds: Bake less than the policy's time per step (never longer).
    """
    version = str(version)
    # Stage 1: policy and the versions involved
    config = load_config(model)
    policy = config.policy.canary
    require_challenger(model, version)
    champion = current_champion(model)
    bake = min(float(policy.bake_seconds), bake_seconds or float(policy.bake_seconds))
    retention = config.policy.retention.audit_days

    # Stage 2: traffic steps, each judged on live gateway metrics
    steps = []
    for weight in policy.steps:
        verdict = observe_step(model, version, champion, weight, bake, policy)
        steps.append({"weight": weight, "passed": verdict.passed, "reasons": verdict.reasons})
        audit_event(
            "canary.step",
            steps[-1],
            model=model,
            version=version,
            policy_digest=config.digest,
            retention_days=retention,
        )
        if not verdict.passed:
            # Stage 3a: automatic rollback
            roll_back_canary(model, version, verdict.reasons)
            audit_event(
                "canary.rolled_back",
                {"weight": weight, "reasons": verdict.reasons, "champion": champion},
                model=model,
                version=version,
                policy_digest=config.digest,
                retention_days=retention,
            )
            raise RolloutError(f"{model} v{version} rolled back at {weight}%: " + "; ".join(verdict.reasons))

    # Stage 3b: the challenger becomes champion
    previous = complete(model, version)
    audit_event(
        "canary.promoted",
        {"previous": previous, "steps": [s["weight"] for s in steps]},
        model=model,
        version=version,
        policy_digest=config.digest,
        retention_days=retention,
    )
    return {"model": model, "version": version, "champion": version, "previous": previous, "steps": steps}


if __name__ == "__main__":
    import sys

    print(canary(sys.argv[1], sys.argv[2]))
