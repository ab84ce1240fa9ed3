"""The ``train`` flow: validated data → fitted pipeline → a registered candidate with evidence."""

from __future__ import annotations

from typing import Any

from prefect import flow

from govdeploy.release.submission import submission_parameters
from govdeploy.release.validation import require_valid
from tasks.audit import audit_event
from tasks.data import load_data, validate_data
from tasks.governance import load_config
from tasks.training import (
    build_sbom,
    capture_environment,
    fit_model,
    prove_submitter,
    register_candidate,
)


@flow(name="train", log_prints=True)
def train(
    model: str = "credit-risk",
    rows: int = 5000,
    seed: int = 7,
    label_bias: float = 0.0,
    shift: float = 0.0,
    positive_weight: float = 1.0,
    data_path: str | None = None,
    submitted_by: str | None = None,
    submission: str | None = None,
) -> dict[str, Any]:
    """Train a candidate and register it in MLflow with its governance evidence.

    Args:
        model: Name of the model in config/models.yaml; also its registered model name.
        rows: Rows of synthetic data to generate when no data_path is given.
        seed: Seed of the generator and of the train/holdout split.
        label_bias: Historical bias against one group in the synthetic labels (0 = none).
        shift: Distribution shift of the synthetic data (0 = none).
        positive_weight: Weight of defaults in the fit (1 = none; 3 = same ranking, higher scores).
        data_path: A CSV or Parquet file to train on instead of synthetic data.
        submitted_by: The submitter's claimed name (default: GOVDEPLOY_USER or the login), used only
            without a ``submission``; the policy then requires one more approval or refuses.
        submission: A submission signed with the submitter's personal key over the model and these
            parameters (``govdeploy train --key KEYFILE``): the proven submitter, recorded in the
            signed candidate; the submitter can never approve the version's release.
    """
    # Stage 1: governance config (policy, catalog entry, expectation suite), and who asks
    config = load_config(model)
    parameters = submission_parameters(rows, seed, label_bias, shift, positive_weight, data_path)
    submitter = prove_submitter(model, parameters, submission, submitted_by, config)

    # Stage 2: data, validated before anything learns from it
    frame = load_data(data_path, rows, seed, label_bias, shift)
    validation = validate_data(
        frame, config.suite, config.policy.gates.data_validation.min_rows, model, "training"
    )
    require_valid(validation)

    # Stage 3: fit
    fitted, holdout = fit_model(config.spec, frame, seed, positive_weight)

    # Stage 4: evidence of how it was made
    env = capture_environment()
    sbom_path = build_sbom(env)

    # Stage 5: register the candidate version, signed as produced: model, evidence and training
    # reference (drift baseline) are signed locally before upload, and the stored copy is verified
    candidate, signed = register_candidate(
        name=model,
        spec=config.spec,
        model=fitted,
        frame=frame,
        holdout=holdout,
        validation=validation,
        suite=config.suite,
        policy_digest=config.digest,
        env=env,
        sbom_path=sbom_path,
        params={
            "rows": rows if data_path is None else "from file",
            "seed": seed,
            "label_bias": label_bias,
            "shift": shift,
            "positive_weight": positive_weight,
            "source": data_path or "synthetic",
        },
        submitter=submitter,
    )

    # Stage 6: audit
    audit_event(
        "candidate.registered",
        {
            "run_id": candidate.run_id,
            "artifact_digest": signed.artifact_digest,
            "signature_sha256": signed.signature_sha256,
        },
        model=model,
        version=candidate.version,
        policy_digest=config.digest,
        actor=submitter.name if submitter.proven else f"unverified:{submitter.name}",
        retention_days=config.policy.retention.audit_days,
    )
    return {
        **candidate.model_dump(),
        "artifact_digest": signed.artifact_digest,
        "submitted_by": submitter.name,
        "submission_proven": submitter.proven,
    }


if __name__ == "__main__":
    print(train())
