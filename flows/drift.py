"""The ``drift`` flow: the serving version's traffic against its signed training reference.

Nightly on the served deployment (``drift.schedule`` of the policy) and on demand with
``govdeploy drift --model NAME``. The decision follows the policy: record only, retrain, or roll back
and retrain; the reactions are Prefect automations on the events this flow emits, so an operator
sees them and can pause them in the UI. Any gap in the evidence fails the run and starts nothing.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from govdeploy.config.governance import Governance
from govdeploy.errors import GovdeployError
from govdeploy.monitoring.decision import estimate_shift
from govdeploy.monitoring.window import window_bounds
from tasks.audit import audit_event
from tasks.drift import (
    announce,
    decide_drift,
    drift_failed,
    drift_summary,
    load_reference,
    load_window,
    measure_drift,
    record_drift_check,
    serving_version,
)
from tasks.governance import load_config


@flow(name="drift", log_prints=True)
def drift(
    model: str, window_hours: int | None = None, end: str | None = None, start: str | None = None
) -> dict[str, Any]:
    """Measure drift of the serving version's window; decide by policy; announce the decision.

    Args:
        model: Registered model name (and entry of config/models.yaml).
        window_hours: Hours of gateway traffic to check (default: the policy's drift.window_hours).
        end: End of the window, ISO 8601 (default: now).
        start: Start of the window, ISO 8601 (default: end minus window_hours).
    """
    # Stage 1: policy and catalog entry
    config = load_config(model)
    try:
        return _check(model, config, window_hours, end, start)
    except GovdeployError as exc:
        # fail safe: no decision, no reaction; the failure is recorded and alerted, then the run fails
        audit_event(
            "drift.failed",
            {"reason": str(exc), "alert": drift_failed(model, str(exc))},
            model=model,
            policy_digest=config.digest,
            retention_days=config.policy.retention.audit_days,
        )
        raise


def _check(
    model: str, config: Governance, window_hours: int | None, end: str | None, start: str | None
) -> dict[str, Any]:
    policy = config.policy.drift
    # Stage 2: the serving version and its verified training reference
    version = serving_version(model)
    reference = load_reference(model, version, config.spec)

    # Stage 3: the window of gateway traffic (fails with the reason when too small, unreadable or
    # reaching past the I/O log's retention)
    retention = config.policy.retention.io_log_days
    begin, stop = window_bounds(window_hours or policy.window_hours, end, start, retention)
    window = load_window(model, version, config.spec, begin, stop, policy.min_rows)

    # Stage 4: measurement and the policy's decision
    measured = measure_drift(reference, window, config.spec)
    decision = decide_drift(reference, window, measured, config)
    summary = drift_summary(window, measured, decision, estimate_shift(reference, window.rows))

    # Stage 5: evidence (MLflow report, Prefect artifacts, audit), then the events automations react to
    summary["report_url"] = record_drift_check(reference, window, summary, config.spec, config.digest)
    audit_event(
        "drift.checked",
        {k: summary[k] for k in ("window", "decision", "shift_estimate", "report_url")},
        model=model,
        version=version,
        policy_digest=config.digest,
        retention_days=config.policy.retention.audit_days,
    )
    summary["events"] = announce(summary)
    return summary


if __name__ == "__main__":
    import sys

    print(drift(sys.argv[1]))
