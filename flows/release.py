"""The ``release`` flow: validation and evaluation gates for a registered candidate version.

Signed approvals, signing and promotion slot in after the policy gate (stage 5).
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from govdeploy.errors import ValidationGateError
from govdeploy.gate import decide, require_pass, validation_only
from tasks.audit import audit_gate
from tasks.data import load_data, validate_data
from tasks.evaluation import current_champion, evaluate_version, read_candidate, record_decision
from tasks.governance import load_config


@flow(name="release", log_prints=True)
def release(
    model: str,
    version: str,
    data_path: str | None = None,
    eval_rows: int = 3000,
    eval_seed: int = 1234,
) -> dict[str, Any]:
    """Gate a candidate version against the policy; fails with the reasons when it does not pass.

    Args:
        model: Registered model name (and entry of config/models.yaml).
        version: The candidate version to release.
        data_path: CSV or Parquet evaluation data; synthetic hold-out data when None.
        eval_rows: Rows of synthetic evaluation data.
        eval_seed: Seed of the synthetic evaluation data (distinct from training seeds).
    """
    version = str(version)
    # Stage 1: governance config and the candidate's registry record
    config = load_config(model)
    read_candidate(model, version)

    # Stage 2: data validation gate
    frame = load_data(data_path, eval_rows, eval_seed)
    validation = validate_data(
        frame, config.suite, config.policy.gates.data_validation.min_rows, model, "evaluation"
    )
    if not validation.passed:
        report = record_decision(validation_only(config.policy, model, version, validation), None)
        audit_gate(report, config.policy.retention.audit_days)
        raise ValidationGateError(
            f"{model} v{version} failed data validation: " + "; ".join(validation.problems)
        )

    # Stage 3: evaluation of the candidate and of the current champion
    candidate = evaluate_version(model, version, frame, config)
    champion_version = current_champion(model)
    champion = None
    if champion_version and champion_version != version:
        champion = evaluate_version(model, champion_version, frame, config)

    # Stage 4: policy gate
    report = record_decision(
        decide(config.policy, model, version, validation, candidate, champion, champion_version),
        candidate,
    )
    audit_gate(report, config.policy.retention.audit_days)
    require_pass(report)

    # Stage 5: signed approvals, signing and promotion follow the gate.
    return {
        "model": model,
        "version": version,
        "gate": "passed",
        "policy_digest": report.policy_digest,
        "summary": report.summary(),
    }


if __name__ == "__main__":
    import sys

    print(release(sys.argv[1], sys.argv[2]))
