"""Canary tasks: move traffic through the gateway, observe a step, roll back or complete."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from govdeploy.backends import registry
from govdeploy.config.policy import CanaryPolicy
from govdeploy.config.settings import Settings, get_settings
from govdeploy.errors import RolloutError
from govdeploy.serving import gateway_client, rollout
from govdeploy.serving.canary import StepVerdict, observe
from govdeploy.trust.roots import load_roots
from tasks.artifacts import artifact_key


def _apply_now(settings: Settings, model: str) -> None:
    """Ask the gateway to reconcile with the registry at once instead of at its next poll."""
    problem = gateway_client.reload(settings, model)
    if problem:
        get_run_logger().warning("%s", problem)


@task(cache_policy=NO_CACHE)
def observe_step(
    model: str, challenger: str, champion: str | None, weight: int, bake_seconds: float, policy: CanaryPolicy
) -> StepVerdict:
    """Send ``weight`` % to the challenger, bake, and judge the step's live traffic."""
    settings = get_settings()
    rollout.set_weight(model, weight, settings.mlflow_url)
    rollout.publish(settings, model, settings.user)
    _apply_now(settings, model)
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


@task(cache_policy=NO_CACHE)
def roll_back_canary(model: str, challenger: str, reasons: list[str]) -> None:
    """Challenger weight 0 and alias removed; the gateway drops it at once; event for automations."""
    settings = get_settings()
    rollout.abort_canary(model, settings.mlflow_url)
    rollout.publish(settings, model, settings.user)
    _apply_now(settings, model)
    emit_event(
        event="govdeploy.canary.rolled_back",
        resource={"prefect.resource.id": f"govdeploy.model.{model}.v{challenger}"},
        payload={"model": model, "version": challenger, "reasons": reasons},
    )


@task(cache_policy=NO_CACHE)
def complete(model: str, challenger: str) -> str | None:
    """The challenger becomes champion; returns the previous champion (the rollback target)."""
    settings = get_settings()
    previous = rollout.complete_canary(model, challenger, settings.mlflow_url)
    rollout.publish(settings, model, settings.user)
    _apply_now(settings, model)
    return previous


@task(cache_policy=NO_CACHE)
def roll_back_champion(model: str) -> tuple[str, str]:
    """Return serving to the previous verified champion; returns (from, to)."""
    settings = get_settings()
    moved = rollout.rollback(model, load_roots(settings), settings.mlflow_url)
    rollout.publish(settings, model, settings.user)
    _apply_now(settings, model)
    return moved


@task(cache_policy=NO_CACHE)
def require_challenger(model: str, version: str) -> None:
    """The canary runs only for the version the ``challenger`` alias points at."""
    settings = get_settings()
    current = registry.alias_version(model, rollout.CHALLENGER, settings.mlflow_url)
    if current != version:
        raise RolloutError(
            f"{model} v{version} is not the challenger (the alias points at {current or 'nothing'}); "
            "promote it with the release flow and canary.enabled: true"
        )
