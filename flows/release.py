"""The ``release`` flow: gates → signed approvals → signed promotion of a candidate version."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.canary import CHANGE_WAIT_SECONDS
from flows.canary import canary as run_canary
from govdeploy.backends.locks import model_change
from govdeploy.errors import ValidationGateError
from govdeploy.release.gate import decide, require_pass, validation_only
from tasks.approval import approval_request, promote_version, wait_for_approvals
from tasks.audit import audit_event, audit_gate
from tasks.data import load_data, validate_data
from tasks.evaluation import (
    current_champion,
    evaluate_version,
    read_candidate,
    record_decision,
    scan_dependencies,
)
from tasks.governance import load_config


@flow(name="release", log_prints=True)
def release(
    model: str,
    version: str,
    data_path: str | None = None,
    eval_rows: int = 3000,
    eval_seed: int = 1234,
    approval_timeout_seconds: int | None = None,
    canary: bool = False,
    canary_bake_seconds: float | None = None,
) -> dict[str, Any]:
    """Gate a candidate, wait for signed approvals, then sign and promote it.

    Fails, with the reasons and nothing promoted, when a gate does not pass, an authorised approver
    rejects, or the quorum is not reached in time.

    Args:
        model: Registered model name (and entry of config/models.yaml).
        version: The candidate version to release.
        data_path: CSV or Parquet evaluation data; synthetic hold-out data when None.
        eval_rows: Rows of synthetic evaluation data.
        eval_seed: Seed of the synthetic evaluation data (distinct from training seeds).
        approval_timeout_seconds: Wait less than the policy's approval timeout (never longer).
        canary: Roll out through a canary even when the policy does not require one (a release
            replacing a champion goes through the canary when either asks; a first release cannot).
        canary_bake_seconds: Bake less than the policy's time per canary step (never longer).
    """
    version = str(version)
    # Stage 1: governance config, and the candidate exists in the registry
    config = load_config(model)
    read_candidate(model, version)

    # Stage 2: data validation gate
    frame = load_data(data_path, eval_rows, eval_seed)
    validation = validate_data(
        frame, config.suite, config.policy.gates.data_validation.min_rows, model, "evaluation"
    )
    if not validation.passed:
        report = record_decision(
            validation_only(config.policy, model, version, validation, config.digest), None
        )
        audit_gate(report, config.policy.retention.audit_days)
        raise ValidationGateError(
            f"{model} v{version} failed data validation: " + "; ".join(validation.problems)
        )

    # Stage 3: evaluation of the candidate and of the current champion; the candidate's SBOM against
    # the policy's advisories
    candidate = evaluate_version(model, version, frame, config)
    vulnerabilities = scan_dependencies(model, version, config)
    champion_version = current_champion(model)
    champion = None
    if champion_version and champion_version != version:
        champion = evaluate_version(model, champion_version, frame, config, level="release")

    # Stage 4: policy gate
    report = record_decision(
        decide(
            config.policy,
            model,
            version,
            validation,
            candidate,
            champion,
            champion_version,
            config.digest,
            vulnerabilities,
        ),
        candidate,
    )
    audit_gate(report, config.policy.retention.audit_days)
    require_pass(report)

    # Stage 5: signed approvals (the run pauses; approvers resume it from the UI or the CLI)
    request = approval_request(
        model,
        version,
        candidate.artifact_digest,
        candidate.submitted_by,
        candidate.submission_proven,
        config.digest,
    )
    approvals = wait_for_approvals(request, report, config, approval_timeout_seconds, canary)

    # Stage 6: signed promotion (release signature over the approved bytes, then the signed serving
    # record that commits it, announced first in the audit trail)
    with model_change(model, "promotion", CHANGE_WAIT_SECONDS):
        intent = audit_event(
            "model.promoting",
            {
                "approvers": [a.statement.approver for a in approvals],
                "artifact_digest": request.artifact_digest,
            },
            model=model,
            version=version,
            policy_digest=config.digest,
            retention_days=config.policy.retention.audit_days,
        )
        promoted = promote_version(request, approvals, report, config, canary, str(intent.seq))
    audit_event(
        "model.promoted",
        {
            "alias": promoted.alias,
            "previous": promoted.previous,
            "approvers": promoted.approvers,
            "artifact_digest": promoted.artifact_digest,
            "signature_sha256": promoted.signature_sha256,
        },
        model=model,
        version=version,
        policy_digest=config.digest,
        retention_days=config.policy.retention.audit_days,
    )
    # Stage 7: a canary through the gateway when the policy asks for one
    rollout = run_canary(model, version, canary_bake_seconds) if promoted.alias == "challenger" else None
    return {
        "rollout": rollout,
        "model": model,
        "version": version,
        "gate": "passed",
        "policy_digest": report.policy_digest,
        "summary": report.summary(),
        "promotion": promoted.model_dump(),
    }


if __name__ == "__main__":
    import sys

    print(release(sys.argv[1], sys.argv[2]))
