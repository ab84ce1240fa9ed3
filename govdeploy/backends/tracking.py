"""Runs on the MLflow tracking server: the training run that registers a candidate (the run per gate
or drift decision is ``govdeploy.backends.decisions``'s).

Through the server's own ``MlflowClient`` (``govdeploy.backends.registry.client``). A candidate is
registered so that what gets signed is what training produced, never a download: ``candidate_run``
opens the run, creates the logged model (pending, no files yet) and registers its version (so the
version number is known); ``save_model_files`` writes the model in MLflow's format into a local
directory the caller owns, where evidence, reference and signature are added;
``govdeploy.trust.versions.sign_candidate`` signs it there and uploads it as the logged model's
artifacts (``registry.upload_model_dir``).
Nothing here uses MLflow's fluent API or its process-global tracking URI.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from govdeploy.backends.registry import client, registry_call
from govdeploy.errors import RegistryError

MODEL_NAME = "model"  # the logged model's name in the run (as ``log_model(name="model")`` did)


class CandidateVersion(BaseModel):
    model: str
    version: str
    run_id: str
    model_uri: str


@dataclass(frozen=True)
class OpenCandidate:
    """A registered version whose logged model is still pending (no files uploaded yet)."""

    model: str
    version: str
    run_id: str
    model_id: str
    artifact_location: str

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_id}"

    def registered(self) -> CandidateVersion:
        return CandidateVersion(
            model=self.model, version=self.version, run_id=self.run_id, model_uri=self.model_uri
        )


def experiment_id(tracking_uri: str, experiment: str) -> str:
    """The id of the experiment on the server, created if missing."""
    with registry_call(f"open experiment {experiment!r}", tracking_uri):
        found = client(tracking_uri).get_experiment_by_name(experiment)
        return str(found.experiment_id if found else client(tracking_uri).create_experiment(experiment))


@contextmanager
def candidate_run(
    *,
    name: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    tracking_uri: str,
    experiment: str,
) -> Iterator[OpenCandidate]:
    """The training run of a candidate: params, holdout metrics and tags logged, the logged model
    created (pending) and its version registered before any file is uploaded.

    On leaving the block the run finishes and the logged model is READY; on an error both are marked
    FAILED (the version stays without ``govdeploy.stage``: nothing to promote) and the error propagates.
    """
    from mlflow.entities import LoggedModelOutput, Metric, Param

    server = client(tracking_uri)
    run_in = experiment_id(tracking_uri, experiment)
    with registry_call(f"open the training run of {name!r}", tracking_uri):
        run_id = server.create_run(run_in, run_name=f"train-{name}", tags=tags).info.run_id
    try:
        with registry_call(f"register a new version of {name!r}", tracking_uri):
            server.log_batch(
                run_id,
                metrics=[Metric(f"holdout_{k}", float(v), _now_ms(), 0) for k, v in metrics.items()],
                params=[Param(k, str(v)) for k, v in params.items()],
            )
            logged = server.create_logged_model(
                run_in,
                name=MODEL_NAME,
                source_run_id=run_id,
                params={k: str(v) for k, v in params.items()},
                tags=tags,
            )
            server.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
            _ensure_registered_model(server, name)
            version = server.create_model_version(
                name,
                f"models:/{logged.model_id}",
                run_id=run_id,
                model_id=logged.model_id,
                await_creation_for=60,
            )
        opened = OpenCandidate(name, str(version.version), run_id, logged.model_id, logged.artifact_location)
    except BaseException:
        _close(server, run_id, None, ok=False)
        raise
    try:
        yield opened
    except BaseException:
        _close(server, run_id, opened.model_id, ok=False)
        raise
    with registry_call(f"finish the training run of {name!r} v{opened.version}", tracking_uri):
        _close(server, run_id, opened.model_id, ok=True)


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def _ensure_registered_model(server: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        server.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise


def _close(server: Any, run_id: str, model_id: str | None, *, ok: bool) -> None:
    """Finish the run and finalize the logged model; on failure, best effort (the first error wins)."""
    from mlflow.exceptions import MlflowException

    try:
        if model_id is not None:
            server.finalize_logged_model(model_id, "READY" if ok else "FAILED")
        server.set_terminated(run_id, "FINISHED" if ok else "FAILED")
    except (MlflowException, OSError):
        if ok:
            raise


def save_model_files(
    directory: Path,
    candidate: OpenCandidate,
    *,
    model: Any,
    input_example: pd.DataFrame,
    pip_requirements: list[str],
) -> Path:
    """Write the fitted model in MLflow's format (skops, with its signature and input example) into
    the new local ``directory`` (``MLmodel`` at its root); evidence and signature are added beside."""
    import mlflow
    from mlflow.models import Model, infer_signature

    if directory.exists():
        raise RegistryError(f"{directory} already exists; the model files go into a new, private directory")
    signature = infer_signature(input_example, model.predict_proba(input_example)[:, 1])
    metadata = Model(
        artifact_path=candidate.artifact_location,
        model_uuid=candidate.model_id,
        run_id=candidate.run_id,
        model_id=candidate.model_id,
    )
    mlflow.sklearn.save_model(
        sk_model=model,
        path=str(directory),
        mlflow_model=metadata,
        serialization_format="skops",
        signature=signature,
        input_example=input_example,
        pip_requirements=pip_requirements,
    )
    for cache in list(directory.rglob("__pycache__")):
        shutil.rmtree(cache, ignore_errors=True)
    return directory


def log_run_files(run_id: str, directory: Path, artifact_path: str, tracking_uri: str) -> None:
    """Copy the files of ``directory`` into the run's artifacts under ``artifact_path`` (browsing
    copies: the signed ones are the version's)."""
    with registry_call(f"log {artifact_path}/ to run {run_id}", tracking_uri):
        client(tracking_uri).log_artifacts(run_id, str(directory), artifact_path)
