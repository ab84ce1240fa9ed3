"""MLflow model directories on local disk: the input signature and the scikit-learn model.

Called only on a directory whose every file has already verified (``govdeploy.trust.versions``):
deserialising a model can execute code, so the format and the types it may construct are pinned
here, never read from the model's own ``MLmodel``: the scikit-learn flavour must be saved with skops
in ``model.skops`` (pickle and cloudpickle are refused), and skops may build only the types it
trusts by default plus ``trusted_types`` given by the caller (none by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from govdeploy.errors import RegistryError, SignatureError

SKOPS_FILE = "model.skops"


@dataclass(frozen=True)
class ModelFiles:
    model: Any
    inputs: list[str]
    input_types: dict[str, str]


def load_sklearn_model(directory: Path, what: str, trusted_types: Sequence[str] = ()) -> ModelFiles:
    """The model and its input signature; RegistryError if the model was logged without one, and
    SignatureError if it asks for another format or for types nobody pinned."""
    import mlflow
    import skops.io

    metadata = mlflow.models.Model.load(str(directory / "MLmodel"))
    if metadata.signature is None:
        raise RegistryError(f"{what} has no input signature; log it with one")
    flavor = metadata.flavors.get("sklearn") or {}
    if flavor.get("serialization_format") != "skops" or flavor.get("pickled_model") != SKOPS_FILE:
        raise SignatureError(
            f"{what} is saved as {flavor.get('serialization_format')!r} in {flavor.get('pickled_model')!r}; "
            f"govdeploy loads only skops models in {SKOPS_FILE} (log it with serialization_format='skops')"
        )
    path = directory / SKOPS_FILE
    untrusted = sorted(set(skops.io.get_untrusted_types(file=path)) - set(trusted_types))
    if untrusted:
        raise SignatureError(
            f"{what} would construct types nobody trusted: {untrusted}; refusing to load it "
            "(types beyond skops' defaults must be pinned by the caller, never taken from MLmodel)"
        )
    model = skops.io.load(path, trusted=list(trusted_types))
    inputs = list(metadata.signature.inputs.input_names())
    types = {spec.name: spec.type.name for spec in metadata.signature.inputs.inputs}
    return ModelFiles(model, inputs, types)
