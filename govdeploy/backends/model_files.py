"""MLflow model directories on local disk: the input signature and the scikit-learn model.

Called only on a directory whose every file has already verified (``govdeploy.trust.versions``):
deserialising an MLflow model can execute code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from govdeploy.errors import RegistryError


@dataclass(frozen=True)
class ModelFiles:
    model: Any
    inputs: list[str]
    input_types: dict[str, str]


def load_sklearn_model(directory: Path, what: str) -> ModelFiles:
    """The model and its input signature; RegistryError if the model was logged without one."""
    import mlflow

    metadata = mlflow.models.Model.load(str(directory / "MLmodel"))
    if metadata.signature is None:
        raise RegistryError(f"{what} has no input signature; log it with one")
    model = mlflow.sklearn.load_model(str(directory))
    inputs = list(metadata.signature.inputs.input_names())
    types = {spec.name: spec.type.name for spec in metadata.signature.inputs.inputs}
    return ModelFiles(model, inputs, types)
