"""The MLflow model registry: versions, their tags and artifact files, aliases.

Every function names the tracking server it talks to and goes through that server's own
``MlflowClient`` (one per tracking URI, see ``client``): nothing here reads or changes MLflow's
process-global tracking URI, so no call can silently fall back to a local ``mlflow.db``. Runs
(training, gate and drift decisions) are logged by ``govdeploy.backends.tracking``.

Every call goes through ``registry_call`` so that a server that is down or a missing model
becomes a ``RegistryError`` naming the server and the fix. Model versions carry govdeploy's
governance tags under the ``govdeploy.`` prefix.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

from govdeploy.config.settings import Settings, get_settings
from govdeploy.errors import GovdeployError, RegistryError

TAG = "govdeploy."
CHAMPION = "champion"
CHALLENGER = "challenger"
STAGE_TAG = f"{TAG}stage"

# The lifecycle of a version, shown in its ``govdeploy.stage`` tag: registered as a candidate,
# approved once its release is signed, then challenger or champion as the serving record names it,
# retired when another version replaced it as champion, rolled-back when a rollback moved away from
# it or its canary was rolled back or aborted.
Stage = Literal["candidate", "approved", "challenger", "champion", "retired", "rolled-back"]
STAGES: tuple[str, ...] = get_args(Stage)


@contextmanager
def registry_call(action: str, tracking_uri: str) -> Iterator[None]:
    """Turn MLflow and connection failures into RegistryError naming the action and server."""
    import requests
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise RegistryError(f"{action}: {exc.message}") from None
        cause = exc.__cause__ or exc.__context__  # MLflow wraps a failed connection in its exception
        if isinstance(cause, requests.exceptions.RetryError):  # 5xx until the retries ran out
            raise RegistryError(
                f"{action}: MLflow at {tracking_uri} kept answering with server errors (for artifacts, "
                "its S3 store may be down); see the MLflow server's log"
            ) from exc
        if isinstance(cause, (requests.ConnectionError, requests.Timeout)):
            raise _unreachable(action, tracking_uri, cause) from exc
        raise RegistryError(f"{action} at {tracking_uri} failed: {exc.message}") from exc
    except (ConnectionError, OSError) as exc:
        raise _unreachable(action, tracking_uri, exc) from exc


def _unreachable(action: str, tracking_uri: str, exc: BaseException) -> RegistryError:
    return RegistryError(
        f"{action}: MLflow at {tracking_uri} is unreachable ({type(exc).__name__}); "
        "start the stack with 'govdeploy up'"
    )


def http_limits(settings: Settings) -> dict[str, str]:
    """MLflow's HTTP retry and timeout variables, and its telemetry off: the operator's where set,
    else bounded by ``dependency_retries`` and ``dependency_timeout_seconds`` (MLflow's defaults
    retry a dead server for minutes)."""
    bounded = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(settings.dependency_retries),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(settings.dependency_timeout_seconds),
        # artifact downloads stream to disk in 1 MiB chunks: MLflow's multipart download holds
        # ranges of 100 MB each in memory, on several threads (a 400 MB model: +300 MB RSS)
        "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false",
        # no usage telemetry to MLflow's collector: a governed deployment sends nothing out, and on
        # a closed network the telemetry thread gives up by deleting an environment variable while
        # requests reads the environment (a model download failed: KeyError
        # '_MLFLOW_TELEMETRY_SESSION_ID')
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    return {name: os.environ.get(name, value) for name, value in bounded.items()}


@lru_cache(maxsize=8)
def client(tracking_uri: str) -> Any:
    """The ``MlflowClient`` of one tracking server (also its model registry).

    Its requests are bounded by ``http_limits`` (MLflow reads them from the environment per request).
    """
    if not tracking_uri.startswith(("http://", "https://")):
        raise RegistryError(
            f"tracking URI {tracking_uri!r} is not an http(s) URL of an MLflow server; set the server's URL"
        )
    for name, value in http_limits(get_settings()).items():
        os.environ.setdefault(name, value)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def flat_tags(prefix: str, values: dict[str, Any]) -> dict[str, str]:
    """Tags ``govdeploy.<prefix>.<key>`` from a flat mapping (values as strings)."""
    return {f"{TAG}{prefix}.{key}": str(value) for key, value in values.items()}


def version_tags(name: str, version: str, tracking_uri: str) -> dict[str, str]:
    """The tags of a registered version; RegistryError if it does not exist."""
    with registry_call(f"read model {name!r} version {version}", tracking_uri):
        found = client(tracking_uri).get_model_version(name, version)
    return dict(found.tags)


def alias_version(name: str, alias: str, tracking_uri: str) -> str | None:
    """The version an alias points to, or None when the model or the alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        found = client(tracking_uri).get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise RegistryError(
            f"read alias {alias!r} of {name!r} at {tracking_uri} failed: {exc.message}"
        ) from exc
    return str(found.version)


def logged_model_id(name: str, version: str, tracking_uri: str) -> str:
    """The MLflow logged-model id behind a registered version (its source ``models:/<id>``)."""
    with registry_call(f"read model {name!r} version {version}", tracking_uri):
        source = str(client(tracking_uri).get_model_version(name, version).source or "")
    if not source.startswith("models:/m-"):
        raise RegistryError(f"model {name!r} version {version} has source {source!r}, not a logged model")
    return source.removeprefix("models:/")


def download_model_dir(name: str, version: str, destination: Path, tracking_uri: str) -> Path:
    """Download exactly the files of a version's artifact directory (nothing added client-side)."""
    import mlflow

    model_id = logged_model_id(name, version, tracking_uri)
    with registry_call(f"download model {name!r} version {version}", tracking_uri):
        location = client(tracking_uri).get_logged_model(model_id).artifact_location
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=str(destination), tracking_uri=tracking_uri
        )
    return Path(path)


def upload_model_files(name: str, version: str, files: list[Path], tracking_uri: str) -> None:
    """Add files to a version's artifact directory (signatures, identity, approvals)."""
    model_id = logged_model_id(name, version, tracking_uri)
    with registry_call(f"upload {[f.name for f in files]} to model {name!r} version {version}", tracking_uri):
        for path in files:
            client(tracking_uri).log_model_artifact(model_id, str(path))


def upload_model_dir(name: str, version: str, directory: Path, tracking_uri: str) -> None:
    """Upload every file of ``directory`` as a version's artifacts, same layout (``MLmodel`` at the root
    of what ``download_model_dir`` downloads)."""
    model_id = logged_model_id(name, version, tracking_uri)
    with registry_call(f"upload the files of model {name!r} version {version}", tracking_uri):
        client(tracking_uri).log_model_artifacts(model_id, str(directory))


def set_version_tags(name: str, version: str, tags: dict[str, str], tracking_uri: str) -> None:
    with registry_call(f"tag model {name!r} version {version}", tracking_uri):
        for key, value in tags.items():
            client(tracking_uri).set_model_version_tag(name, version, key, value)


# MLflow stores a version's description in a column of 5000 characters
MAX_DESCRIPTION_CHARS = 5000


def set_version_description(name: str, version: str, description: str, tracking_uri: str) -> None:
    """Replace a version's description (markdown for people; tools read the tags), cut to fit."""
    if len(description) > MAX_DESCRIPTION_CHARS:
        description = description[: MAX_DESCRIPTION_CHARS - 2] + " …"
    with registry_call(f"describe model {name!r} version {version}", tracking_uri):
        client(tracking_uri).update_model_version(name, version, description=description)


def model_tag(name: str, key: str, tracking_uri: str) -> str | None:
    """A tag of the registered model (not of a version), or None when the model or tag is missing."""
    from mlflow.exceptions import MlflowException

    try:
        return dict(client(tracking_uri).get_registered_model(name).tags).get(key)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise RegistryError(f"read tags of model {name!r} at {tracking_uri} failed: {exc.message}") from exc


def set_model_tag(name: str, key: str, value: str, tracking_uri: str) -> None:
    with registry_call(f"tag model {name!r}", tracking_uri):
        client(tracking_uri).set_registered_model_tag(name, key, value)


def set_alias(name: str, alias: str, version: str, tracking_uri: str) -> None:
    with registry_call(f"point alias {alias!r} of {name!r} at version {version}", tracking_uri):
        client(tracking_uri).set_registered_model_alias(name, alias, version)


def delete_alias(name: str, alias: str, tracking_uri: str) -> None:
    """Remove an alias; nothing happens if it is not set."""
    if alias_version(name, alias, tracking_uri) is None:
        return
    with registry_call(f"remove alias {alias!r} of {name!r}", tracking_uri):
        client(tracking_uri).delete_registered_model_alias(name, alias)


def set_stages(name: str, stages: Mapping[str | None, Stage], tracking_uri: str) -> str | None:
    """Tag each version with its lifecycle stage (``None`` versions are skipped); the problems, or None.

    The stage is informational: the signed serving record decides what serves, and the tag only
    follows changes that already committed. So this never raises: a version it could not tag keeps
    showing its older stage, the caller logs the problem as a warning, and the change stands.
    """
    problems = []
    for version, stage in stages.items():
        if version is None:
            continue
        if stage not in STAGES:
            problems.append(f"{stage!r} is not a stage; use one of {', '.join(STAGES)}")
            continue
        try:
            set_version_tags(name, version, {STAGE_TAG: stage}, tracking_uri)
        except GovdeployError as exc:
            problems.append(f"{STAGE_TAG} of {name} v{version} not set to {stage!r}: {exc}")
    if not problems:
        return None
    return "; ".join(problems) + " (the stage tag is informational; what serves is unchanged)"
