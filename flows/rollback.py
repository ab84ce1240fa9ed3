"""The ``rollback`` flow: serving returns to the previous verified champion at once."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.canary import CHANGE_WAIT_SECONDS
from govdeploy.backends.locks import model_change
from tasks.audit import audit_event
from tasks.canary import roll_back_champion
from tasks.governance import load_config


@flow(name="rollback", log_prints=True)
def rollback(model: str, reason: str = "requested") -> dict[str, Any]:
    """Move ``champion`` back to the version it replaced (re-verified) and stop any canary.

    Args:
        model: Registered model name.
        reason: Why, for the audit trail.
    """
    config = load_config(model)
    with model_change(model, "rollback", CHANGE_WAIT_SECONDS):
        current, target = roll_back_champion(model)
    audit_event(
        "rollback",
        {"from": current, "to": target, "reason": reason},
        model=model,
        version=target,
        policy_digest=config.digest,
        retention_days=config.policy.retention.audit_days,
    )
    return {"model": model, "from": current, "to": target}


if __name__ == "__main__":
    import sys

    print(rollback(sys.argv[1]))
