"""Training tasks: fit, capture the environment and SBOM, register the candidate signed as produced."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from pydantic import BaseModel

from govdeploy.backends import registry, tracking
from govdeploy.config.approvers import load_approvers
from govdeploy.config.catalog import ModelSpec
from govdeploy.config.governance import Governance
from govdeploy.config.settings import get_settings
from govdeploy.config.suites import Suite
from govdeploy.errors import GovdeployError
from govdeploy.release import environment
from govdeploy.release.data import dataset_digest, split_frame
from govdeploy.release.reference import build_reference, write_reference
from govdeploy.release.training import fit
from govdeploy.release.validation import ValidationReport
from govdeploy.trust import versions
from govdeploy.trust.keys import signing_key
from govdeploy.trust.nonces import submission_nonces
from govdeploy.trust.roots import load_roots
from govdeploy.trust.signatures import Identity
from govdeploy.trust.submissions import verify_submission
from govdeploy.trust.validity import clip
from govdeploy.trust.versions import SignedVersion
from tasks.artifacts import artifact_key
from tasks.audit import audit_event

SERVING_PACKAGES = ("scikit-learn", "skops", "pandas", "numpy", "scipy", "mlflow")


@task(cache_policy=NO_CACHE)
def fit_model(
    spec: ModelSpec, frame: pd.DataFrame, seed: int, positive_weight: float = 1.0
) -> tuple[Any, dict[str, float]]:
    """Fit the catalogued pipeline on 80 % of the rows; metrics on the other 20 %."""
    train, test = split_frame(frame, 0.2, seed)
    model, holdout = fit(spec, train, test, positive_weight)
    get_run_logger().info("fitted on %d rows; holdout %s", len(train), holdout)
    return model, holdout


@task(cache_policy=NO_CACHE)
def capture_environment() -> dict[str, Any]:
    """Python, platform, every installed package with its version, the git commit."""
    return environment.capture_environment()


@task(cache_policy=NO_CACHE, retries=1)
def build_sbom(env: dict[str, Any]) -> str:
    """A CycloneDX JSON SBOM of the training environment (one per distinct environment)."""
    cached = environment.cached_sbom(get_settings().state_dir / "sbom", env)
    path = Path(tempfile.mkdtemp(prefix="govdeploy-")) / "sbom.cdx.json"
    shutil.copyfile(cached, path)
    components = json.loads(path.read_text(encoding="utf-8")).get("components", [])
    get_run_logger().info("SBOM with %d components (%s)", len(components), cached.name)
    return str(path)


class Submitter(BaseModel):
    name: str
    proven: bool


@task(cache_policy=NO_CACHE)
def prove_submitter(
    model: str, parameters: dict[str, Any], submission: str | None, claimed: str | None, config: Governance
) -> Submitter:
    """The submitter of a training run: proven by a signed submission, or a claimed name that the
    policy's ``approval.unproven_submission`` handles at release. A verified submission is used up
    by this run: the same token is refused (and recorded) in any other run."""
    settings = get_settings()
    logger = get_run_logger()
    if submission is None:
        name = claimed or settings.user
        logger.warning("submitter %r is claimed, not proven by a signed submission", name)
        return Submitter(name=name, proven=False)
    run_id = str(flow_run.id) if flow_run.id else None
    try:
        person = verify_submission(
            submission,
            model,
            parameters,
            load_approvers(settings.approvers_path),
            settings.keys_dir,
            config.policy.approval.statement_expiry_minutes,
            used=submission_nonces(settings.state_dir),
            flow_run_id=run_id,
            claimed=claimed,
            skew_seconds=config.policy.approval.clock_skew_seconds,
        )
    except GovdeployError as exc:  # a refused submission is an attempt: it leaves a record
        audit_event.fn(
            "submission.refused",
            {"reason": str(exc), "claimed": clip(claimed) if claimed else None, "flow_run_id": run_id},
            model=model,
            actor="unverified",
            retention_days=config.policy.retention.audit_days,
        )
        raise
    logger.info("submission by %s verified and used up by flow run %s", person, run_id)
    return Submitter(name=person, proven=True)


GOVERNANCE_DIR = "governance"


@task(cache_policy=NO_CACHE)
def register_candidate(
    *,
    name: str,
    spec: ModelSpec,
    model: Any,
    frame: pd.DataFrame,
    holdout: dict[str, float],
    validation: ValidationReport,
    suite: Suite,
    policy_digest: str,
    env: dict[str, Any],
    sbom_path: str,
    params: dict[str, Any],
    submitter: Submitter,
) -> tuple[tracking.CandidateVersion, SignedVersion]:
    """Register a candidate version and sign what training produced: the model files, the governance
    evidence (environment, lineage, owners, SBOM under ``governance/``) and the training reference are
    written locally, signed at candidate level, uploaded, and the stored copy must verify with the
    same digest before the version is tagged ``govdeploy.stage=candidate``."""
    settings = get_settings()
    lineage = {
        "dataset_digest": dataset_digest(frame),
        "dataset_rows": len(frame),
        "dataset_columns": list(frame.columns),
        "expectation_suite": suite.spec.name,
        "expectation_suite_digest": suite.digest,
        "expectations_met": f"{validation.evaluated - len(validation.failed)}/{validation.declared}",
        "policy_digest": policy_digest,
        "source": params.get("source", ""),
    }
    owners = spec.owners.model_dump(mode="json")
    tags = {
        f"{registry.TAG}submitted_by": submitter.name,
        f"{registry.TAG}git_commit": env["git_commit"],
        f"{registry.TAG}policy_digest": policy_digest,
        **registry.flat_tags("lineage", {k: v for k, v in lineage.items() if k != "dataset_columns"}),
        **registry.flat_tags("owner", {role: f"{o['name']} <{o['email']}>" for role, o in owners.items()}),
    }
    evidence = {"environment.json": env, "lineage.json": lineage, "owners.json": owners}
    reference = build_reference(spec, model, frame)
    with (
        tracking.candidate_run(
            name=name,
            params=params,
            metrics=holdout,
            tags=tags,
            tracking_uri=settings.mlflow_url,
            experiment=settings.experiment,
        ) as opened,
        tempfile.TemporaryDirectory(prefix="govdeploy-candidate-") as workdir,
    ):
        directory = tracking.save_model_files(
            Path(workdir) / "model",
            opened,
            model=model,
            # numeric inputs are doubles in the signature, so a missing value is a NaN, not a schema error
            input_example=frame[spec.features]
            .head(5)
            .astype(dict.fromkeys(spec.numeric_features, "float64")),
            pip_requirements=[f"{p}=={env['packages'][p]}" for p in SERVING_PACKAGES if p in env["packages"]],
        )
        governance = write_evidence(directory / GOVERNANCE_DIR, evidence, Path(sbom_path))
        write_reference(directory, spec, reference)
        tracking.log_run_files(opened.run_id, governance, GOVERNANCE_DIR, settings.mlflow_url)
        claims = Identity(
            model=name,
            version=opened.version,
            model_id=opened.model_id,
            run_id=opened.run_id,
            submitted_by=submitter.name,
            submission_proven=submitter.proven,
        )
        signed = versions.sign_candidate(
            directory, claims, signing_key(settings, "candidate"), load_roots(settings), settings.mlflow_url
        )
    registry.set_version_tags(
        name, opened.version, {**tags, f"{registry.TAG}stage": "candidate"}, settings.mlflow_url
    )
    candidate = opened.registered()
    logger = get_run_logger()
    logger.info("reference of %d rows signed with v%s", len(reference), candidate.version)
    logger.info(
        "signed %s v%s before upload: artifact digest %s", name, candidate.version, signed.artifact_digest
    )
    create_markdown_artifact(
        key=artifact_key("candidate", name, f"v{candidate.version}"),
        markdown=(
            f"# Candidate {name} v{candidate.version}\n\n"
            f"- submitted by: {submitter.name}\n- MLflow run: `{candidate.run_id}`\n"
            f"- dataset digest: `{lineage['dataset_digest']}` ({len(frame)} rows)\n"
            f"- suite `{suite.spec.name}` digest: `{suite.digest}`\n"
            f"- policy digest: `{policy_digest}`\n- holdout: {holdout}\n"
            f"- signed artifact digest: `{signed.artifact_digest}`\n"
            f"- model page: {settings.mlflow_url}/#/models/{name}/versions/{candidate.version}\n"
        ),
        description="Registered candidate",
    )
    return candidate, signed


def write_evidence(directory: Path, evidence: dict[str, Any], sbom: Path) -> Path:
    """The governance evidence as files of ``directory`` (JSON documents and the SBOM), to be signed
    with the model."""
    directory.mkdir(parents=True, exist_ok=False)
    for file_name, content in evidence.items():
        (directory / file_name).write_text(json.dumps(content, indent=2, sort_keys=True), encoding="utf-8")
    shutil.copyfile(sbom, directory / sbom.name)
    return directory
