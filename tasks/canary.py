"""Canary tasks: move traffic through the gateway, observe a step, roll back or complete."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from govdeploy.backends import flow_runs, registry
from govdeploy.config.policy import CanaryPolicy
from govdeploy.config.settings import Settings, get_settings
from govdeploy.errors import RolloutError
from govdeploy.monitoring.alerts import post_alert
from govdeploy.serving import gateway_client, rollout
from govdeploy.serving.canary import StepVerdict, observe
from govdeploy.trust.roots import load_roots
from govdeploy.trust.serving_content import ServingRecord
from tasks.artifacts import artifact_key


def _set_stages(settings: Settings, model: str, stages: dict[str | None, registry.Stage]) -> None:
    """Tag the versions a committed change moved with their lifecycle stage (informational: the
    signed serving record decides serving); a failure only warns."""
    problem = registry.set_stages(model, stages, settings.mlflow_url)
    if problem:
        get_run_logger().warning("%s", problem)


def _apply_now(settings: Settings, record: ServingRecord) -> None:
    """Move the registry's labels after the record, and ask the gateway to serve it at once instead
    of at its next poll."""
    logger = get_run_logger()
    problem = rollout.sync_registry(settings, record)
    if problem:
        logger.warning("%s", problem)
    problem = gateway_client.reload(settings, record.model)
    if problem:
        logger.warning("%s", problem)


@task(cache_policy=NO_CACHE)
def observe_step(
    model: str, challenger: str, champion: str | None, weight: int, bake_seconds: float, policy: CanaryPolicy
) -> StepVerdict:
    """Send ``weight`` % to the challenger, bake, and judge the step's live traffic."""
    settings = get_settings()
    _apply_now(settings, rollout.set_weight(settings, model, challenger, weight, settings.user))
    verdict = observe(
        lambda: gateway_client.model_metrics(settings, model),
        weight,
        challenger,
        champion,
        bake_seconds,
        policy,
    )
    create_table_artifact(
        key=artifact_key("canary", model, f"v{challenger}", f"step-{weight}"),
        table=[
            {"version": f"challenger v{challenger}", **verdict.challenger},
            {"version": f"champion v{champion}", **verdict.champion},
        ],
        description=f"Canary step {weight}%: "
        + ("passed" if verdict.passed else "BREACH: " + "; ".join(verdict.reasons)),
    )
    get_run_logger().info("canary step %d%%: %s", weight, "passed" if verdict.passed else verdict.reasons)
    return verdict


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def roll_back_canary(
    model: str, challenger: str | None, reasons: list[str], intent: str | None = None
) -> str | None:
    """All traffic back to the champion and the challenger removed (one signed record, naming
    ``intent``, the audit record announcing it, when there is one); the gateway drops it at once; an
    event for automations. Returns the challenger removed (None: there was no canary)."""
    settings = get_settings()
    aborted = rollout.abort_canary(settings, model, settings.user, audit_record=intent)
    if aborted is None:
        return None
    record, challenger = aborted
    _apply_now(settings, record)
    _set_stages(settings, model, {challenger: "rolled-back"})
    emit_event(
        event="govdeploy.canary.rolled_back",
        resource={"prefect.resource.id": f"govdeploy.model.{model}.v{challenger}"},
        payload={"model": model, "version": challenger, "reasons": reasons},
    )
    return challenger


@task(cache_policy=NO_CACHE)
def complete(model: str, challenger: str) -> str | None:
    """The challenger becomes champion; returns the previous champion."""
    settings = get_settings()
    record, previous = rollout.complete_canary(settings, model, challenger, settings.user)
    _apply_now(settings, record)
    _set_stages(settings, model, {challenger: "champion", previous: "retired"})
    return previous


@task(cache_policy=NO_CACHE)
def roll_back_champion(model: str) -> tuple[str, str]:
    """Return serving to the previous verified champion; returns (from, to)."""
    settings = get_settings()
    before = rollout.serving_now(settings, model)  # a challenger the rollback drops is rolled back too
    record, current, target = rollout.rollback(settings, model, load_roots(settings), settings.user)
    _apply_now(settings, record)
    dropped = before.challenger if before else None
    _set_stages(settings, model, {current: "rolled-back", dropped: "rolled-back", target: "champion"})
    return current, target


@task(cache_policy=NO_CACHE)
def require_challenger(model: str, version: str) -> str:
    """The canary runs only for the version the signed serving record names as challenger; returns
    the serving champion it is compared with."""
    settings = get_settings()
    now = rollout.serving_now(settings, model)
    if now is None or now.challenger != version or now.champion is None:
        raise RolloutError(
            f"{model} v{version} is not the serving challenger (the serving record names "
            f"{('v' + now.challenger) if now and now.challenger else 'none'}); promote it with the "
            "release flow and canary.enabled: true"
        )
    return now.champion


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def find_orphan(model: str, policy: CanaryPolicy) -> tuple[str, str] | None:
    """(challenger, why) when ``model``'s challenger has traffic no live canary run judges, or None."""
    settings = get_settings()
    record = rollout.serving_now(settings, model)
    if record is None or record.challenger is None or record.challenger_weight == 0:
        return None
    live = flow_runs.live_runs("canary", {"model": model, "version": record.challenger})
    reason = rollout.orphaned(record, bool(live), policy.stale_after_seconds)
    return (record.challenger, reason) if reason else None


@task(cache_policy=NO_CACHE)
def alert_orphan(model: str, reason: str) -> None:
    """Alert that an orphaned canary was ended (or could not be)."""
    settings = get_settings()
    alert = {"event": "govdeploy.canary.orphaned", "model": model, "reason": reason}
    get_run_logger().error("%s; alert %s", reason, post_alert(settings.alert_webhook, alert))


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def require_champion(model: str) -> str:
    """The champion the signed serving record names; RolloutError when none serves."""
    champion = rollout.serving_champion(get_settings(), model)
    if champion is None:
        raise RolloutError(f"{model} has no serving champion; release one first")
    return champion
