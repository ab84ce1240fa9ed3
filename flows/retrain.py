"""The ``retrain`` flow: a new candidate from newer data, handed to the full release path.

Started by the drift automations (or by hand). The candidate is never promoted automatically: the
release run it starts passes the gates, waits for signed approvals and goes through a canary.
"""

from __future__ import annotations

import hashlib
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from flows.train import train
from govdeploy.backends import flow_runs
from tasks.audit import audit_event
from tasks.governance import load_config

RETRAIN_SUBMITTER = "govdeploy-retrain"


@flow(name="retrain", log_prints=True)
def retrain(
    model: str,
    shift: float = 0.0,
    rows: int = 5000,
    seed: int | None = None,
    data_path: str | None = None,
    reason: str = "requested",
) -> dict[str, Any]:
    """Train on the newer data and start a release (gates, approvals, canary) of the candidate.

    Args:
        model: Registered model name (and entry of config/models.yaml).
        shift: For synthetic data: the distribution shift of the newer data (the drift flow estimates it).
        rows: Rows of synthetic data.
        seed: Seed of the synthetic data (default: derived from this run's id).
        data_path: CSV or Parquet file of newer labelled data instead of synthetic data.
        reason: Why, for the audit trail (the drift decision's reasons).
    """
    config = load_config(model)
    seed = seed if seed is not None else int(hashlib.sha256(str(flow_run.id).encode()).hexdigest()[:6], 16)
    candidate = train(
        model=model, rows=rows, seed=seed, shift=shift, data_path=data_path, submitted_by=RETRAIN_SUBMITTER
    )
    release_run = flow_runs.start(
        "release/release", {"model": model, "version": candidate["version"], "canary": True}
    )
    audit_event(
        "retrain.started_release",
        {"reason": reason, "shift": shift, "release_run": release_run, "seed": seed},
        model=model,
        version=candidate["version"],
        policy_digest=config.digest,
        retention_days=config.policy.retention.audit_days,
    )
    return {"model": model, "version": candidate["version"], "release_run": release_run, "reason": reason}


if __name__ == "__main__":
    import sys

    print(retrain(sys.argv[1]))
