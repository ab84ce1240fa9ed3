"""``load_verified_model``: the one way govdeploy loads a registered model.

The version's artifact directory is downloaded to a fresh private directory, every file is
verified against its signature from a trusted key (and the signature's identity against the
requested model and version), and only then is the model deserialised, from those same verified
bytes.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from govdeploy.backends import registry
from govdeploy.errors import RegistryError
from govdeploy.trust.signatures import Level, artifact_digest, verify_directory

PROFILE_FILE = "reference_profile.json"
REFERENCE_FILE = "reference.parquet"


@dataclass(frozen=True)
class VerifiedModel:
    model: Any
    name: str
    version: str
    level: Level
    signature_sha256: str
    artifact_digest: str
    inputs: list[str]
    input_types: dict[str, str]
    # the signed training profile (``reference_profile.json``; see govdeploy.reference), if logged
    profile: dict[str, Any] | None = None


@contextmanager
def verified_directory(
    name: str, version: str, *, trusted_keys: list[Path], level: Level, tracking_uri: str
) -> Iterator[tuple[Path, str]]:
    """A private download of the version whose every file verified; yields (directory, signature sha256)."""
    workdir = Path(tempfile.mkdtemp(prefix="govdeploy-verify-"))
    try:
        directory = registry.download_model_dir(name, version, workdir, tracking_uri)
        yield directory, verify_directory(directory, trusted_keys, level, name, version)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def load_verified_model(
    name: str, version: str, *, trusted_keys: list[Path], level: Level, tracking_uri: str
) -> VerifiedModel:
    """Download, verify every file, then load; raise SignatureError before loading anything."""
    import mlflow

    with verified_directory(
        name, version, trusted_keys=trusted_keys, level=level, tracking_uri=tracking_uri
    ) as (directory, signature):
        metadata = mlflow.models.Model.load(str(directory / "MLmodel"))
        if metadata.signature is None:
            raise RegistryError(f"model {name!r} version {version} has no input signature; log it with one")
        model = mlflow.sklearn.load_model(str(directory))
        digest = artifact_digest(directory)
        profile_file = directory / PROFILE_FILE
        profile = json.loads(profile_file.read_text(encoding="utf-8")) if profile_file.is_file() else None
    inputs = list(metadata.signature.inputs.input_names())
    types = {spec.name: spec.type.name for spec in metadata.signature.inputs.inputs}
    return VerifiedModel(model, name, version, level, signature, digest, inputs, types, profile)


@dataclass(frozen=True)
class VersionCheck:
    name: str
    version: str
    level: Level
    signature_sha256: str
    artifact_digest: str
    files: int


def verify_version(
    name: str, version: str, *, trusted_keys: list[Path], level: Level, tracking_uri: str
) -> VersionCheck:
    """Re-hash every file of a version in the artifact store and check its signature; load nothing."""
    with verified_directory(
        name, version, trusted_keys=trusted_keys, level=level, tracking_uri=tracking_uri
    ) as (directory, signature):
        files = sum(1 for p in directory.rglob("*") if p.is_file())
        return VersionCheck(name, version, level, signature, artifact_digest(directory), files)


def parse_model_uri(uri: str, tracking_uri: str) -> tuple[str, str]:
    """``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` → (name, version)."""
    if not uri.startswith("models:/"):
        raise RegistryError(f"model URI {uri!r} is not models:/NAME/VERSION or models:/NAME@ALIAS")
    rest = uri.removeprefix("models:/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        version = registry.alias_version(name, alias, tracking_uri)
        if version is None:
            raise RegistryError(f"model {name!r} has no alias {alias!r}; see its aliases in MLflow")
        return name, version
    name, _, version = rest.partition("/")
    if not name or not version.isdigit():
        raise RegistryError(f"model URI {uri!r} is not models:/NAME/VERSION (VERSION a number)")
    return name, version
