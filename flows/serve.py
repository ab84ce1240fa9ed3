"""Serve the project's deployments: flows started from the Prefect UI run in this process.

Before serving, the runs of these deployments that a previous deployments process left Pending,
Running or Paused are ended as Crashed, recorded and alerted (``govdeploy.release.recovery``).

Besides the deployments started by hand, this defines the drift loop as code: a nightly ``drift``
deployment per catalogued model (cron from the policy), a nightly ``compliance`` deployment
(retention of the I/O log and the compliance checks; cron ``retention.schedule``), and two
automations (deployment triggers) that an operator sees, and can pause, in the Prefect UI:
``govdeploy.drift.detected`` runs ``retrain``, ``govdeploy.rollback.requested`` runs ``rollback``.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from prefect import serve
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger

from flows.canary import canary, canary_abort, canary_watch
from flows.compliance import compliance
from flows.drift import drift
from flows.release import release
from flows.retrain import retrain
from flows.rollback import rollback
from flows.train import train
from govdeploy.config.catalog import load_catalog
from govdeploy.config.policy import load_policy
from govdeploy.config.settings import get_settings
from govdeploy.release.recovery import recover_before_serving

MODEL_RESOURCE: dict[str, str | list[str]] = {"prefect.resource.id": "govdeploy.model.*"}
RECOVERY_TIMEOUT_SECONDS = 60.0


def automations() -> dict[str, DeploymentEventTrigger]:
    """The reactions to drift decisions, by deployment name."""
    return {
        "retrain": DeploymentEventTrigger(
            name="govdeploy: retrain on drift",
            description="A drift check found data drift or a performance drop: train a new candidate "
            "and start its release (gates, signed approvals, canary).",
            expect={"govdeploy.drift.detected"},
            match=MODEL_RESOURCE,
            parameters={
                "model": "{{ event.payload.model }}",
                "shift": "{{ event.payload.shift_estimate }}",
                "reason": "{{ event.payload.summary }}",
            },
        ),
        "rollback": DeploymentEventTrigger(
            name="govdeploy: rollback on performance drop",
            description="A drift check found performance below the policy's limit: return serving to "
            "the previous verified champion at once.",
            expect={"govdeploy.rollback.requested"},
            match=MODEL_RESOURCE,
            parameters={"model": "{{ event.payload.model }}", "reason": "{{ event.payload.summary }}"},
        ),
    }


def deployments() -> list[Any]:
    settings = get_settings()
    policy = load_policy(settings.policy_path)
    reactions = automations()
    nightly = [
        drift.to_deployment(
            name=f"nightly-{model}",
            description=f"Nightly drift check of {model} against its signed training reference.",
            parameters={"model": model},
            schedules=[CronSchedule(cron=policy.drift.schedule, timezone="UTC")],
        )
        for model in load_catalog(settings.models_path).models
    ]
    return [
        *nightly,
        compliance.to_deployment(
            name="nightly-compliance",
            description="Nightly: delete the I/O log past retention, then run every compliance check.",
            schedules=[CronSchedule(cron=policy.retention.schedule, timezone="UTC")],
        ),
        canary.to_deployment(
            name="canary",
            description="Canary a promoted challenger through the gateway.",
            parameters={"model": "credit-risk"},
        ),
        canary_abort.to_deployment(
            name="canary-abort",
            description="End a canary at once: all traffic back to the champion.",
            parameters={"model": "credit-risk"},
        ),
        canary_watch.to_deployment(
            name="canary-watch",
            description="Every minute: end any canary whose challenger has traffic no live run judges.",
            interval=60,
        ),
        rollback.to_deployment(
            name="rollback",
            description="Return serving to the previous verified champion.",
            parameters={"model": "credit-risk"},
            triggers=[reactions["rollback"]],
        ),
        retrain.to_deployment(
            name="retrain",
            description="Train on newer data and start the candidate's release.",
            parameters={"model": "credit-risk"},
            triggers=[reactions["retrain"]],
        ),
        drift.to_deployment(
            name="drift",
            description="Drift check on demand.",
            parameters={"model": "credit-risk"},
        ),
        train.to_deployment(name="train", description="Train and register a candidate."),
        release.to_deployment(
            name="release",
            description="Gate a candidate version (validation, evaluation, policy).",
            parameters={"model": "credit-risk"},
        ),
    ]


def main() -> None:
    """End the runs a previous deployments process left unfinished (one such process per machine:
    nothing runs them any more), then serve every deployment until stopped."""
    served = [cast(RunnerDeployment, d) for d in deployments()]
    logging.getLogger("govdeploy.recovery").setLevel(logging.INFO)
    names = [d.full_name for d in served]
    recover_before_serving(get_settings(), names, RECOVERY_TIMEOUT_SECONDS, quiet=repeating(served))
    serve(*served, query_seconds=2)


def repeating(served: list[RunnerDeployment]) -> list[str]:
    """The deployments on an interval schedule (``canary-watch``): a run of theirs that a dead
    process left is ended and recorded, but not alerted, as the next one follows within minutes."""
    return [
        d.full_name
        for d in served
        if any(isinstance(s.schedule, IntervalSchedule) for s in d.schedules or [])
    ]


if __name__ == "__main__":
    main()
