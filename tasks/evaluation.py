"""Evaluation tasks: score a registered version, scan its dependencies, record the gate's decision."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from govdeploy.backends import decisions, registry
from govdeploy.config.governance import Governance
from govdeploy.config.settings import get_settings
from govdeploy.release import gate
from govdeploy.release.evaluation import ModelEvaluation, evaluate_model
from govdeploy.release.vulnerabilities import VulnerabilityScan, scan_version
from govdeploy.serving import rollout
from govdeploy.trust.roots import load_roots
from govdeploy.trust.signatures import Level
from govdeploy.trust.versions import load_verified_model
from tasks.artifacts import publish_gate


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def read_candidate(model: str, version: str) -> dict[str, str]:
    """The version's governance tags; fails if the version does not exist."""
    settings = get_settings()
    return registry.version_tags(model, version, settings.mlflow_url)


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def current_champion(model: str) -> str | None:
    """The champion the signed serving record names (the version serving), if any."""
    return rollout.serving_champion(get_settings(), model)


@task(cache_policy=NO_CACHE)
def evaluate_version(
    model: str, version: str, frame: pd.DataFrame, config: Governance, level: Level = "candidate"
) -> ModelEvaluation:
    """Performance, fairness and privacy evidence of one registered version (verified at ``level``,
    then loaded): the candidate at candidate level, the serving champion as a release, approvals
    included."""
    settings = get_settings()
    verified = load_verified_model(
        model,
        version,
        roots=load_roots(settings),
        level=level,
        tracking_uri=settings.mlflow_url,
    )
    evaluation = evaluate_model(
        verified.model, frame, config.spec, verified.inputs, config.policy.gates.privacy
    ).model_copy(
        update={
            "artifact_digest": verified.artifact_digest,
            "submitted_by": verified.identity.submitted_by,
            "submission_proven": verified.identity.submission_proven,
        }
    )
    get_run_logger().info("%s v%s on %d rows: %s", model, version, evaluation.rows, evaluation.metrics)
    return evaluation


@task(cache_policy=NO_CACHE)
def scan_dependencies(model: str, version: str, config: Governance) -> VulnerabilityScan | None:
    """The candidate's signed SBOM against the policy's advisories (None: the policy has no
    vulnerability gate). A scan that could not be made is returned with its error: the gate fails."""
    policy = config.policy.gates.vulnerabilities
    if policy is None:
        return None
    settings = get_settings()
    scan = scan_version(
        model,
        version,
        roots=load_roots(settings),
        tracking_uri=settings.mlflow_url,
        policy=policy,
        base=Path(config.policy.path).parent if config.policy.path else settings.config_dir,
    )
    logger = get_run_logger()
    if scan.error:
        logger.error("%s v%s: dependencies not scanned: %s", model, version, scan.error)
    else:
        logger.info(
            "%s v%s: %d packages against %s: %d advisories, %d blocking",
            model,
            version,
            scan.packages,
            scan.source,
            len(scan.findings),
            len(scan.blocking),
        )
    return scan


@task(cache_policy=NO_CACHE)
def record_decision(report: gate.GateReport, evaluation: ModelEvaluation | None) -> gate.GateReport:
    """Log the decision to MLflow (gate run + version tags) and to the Prefect UI.

    A released version keeps the gate evidence it was promoted on: re-gating it records the new result
    in its own run and in ``govdeploy.gate.latest``, and warns that the evidence was kept."""
    settings = get_settings()
    metrics = dict(evaluation.metrics) if evaluation else {}
    for result in evaluation.fairness if evaluation else []:
        metrics[f"dpd_{result.attribute}"] = result.demographic_parity_difference
        metrics[f"eod_{result.attribute}"] = result.equalized_odds_difference
    payload = {
        **report.model_dump(),
        "passed": report.passed,
        "summary": report.summary(),
        "evaluation": evaluation.model_dump() if evaluation else None,
    }
    recorded = decisions.record_gate(
        name=report.model,
        version=report.version,
        report=payload,
        metrics=metrics,
        passed=report.passed,
        policy_digest=report.policy_digest,
        tracking_uri=settings.mlflow_url,
        experiment=settings.experiment,
        flow_run_id=str(flow_run.id) if flow_run.id else None,
    )
    publish_gate(report, recorded.url)
    logger = get_run_logger()
    (logger.info if report.passed else logger.error)("%s", report.summary())
    if recorded.kept:
        logger.warning(
            "gate evidence of %s v%s not replaced: %s", report.model, report.version, recorded.kept
        )
    return report
