"""The loader pins the serialization format and the trusted types; MLmodel cannot ask for more."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import yaml
from sklearn.linear_model import LogisticRegression

from govdeploy.backends.model_files import load_sklearn_model
from govdeploy.errors import SignatureError


class Weird:
    """A type skops does not trust by default."""


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    import pandas as pd

    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    model = LogisticRegression().fit(frame, [0, 1, 0, 1])
    signature = mlflow.models.infer_signature(frame, model.predict_proba(frame)[:, 1])
    directory = tmp_path / "model"
    mlflow.sklearn.save_model(model, str(directory), signature=signature, serialization_format="skops")
    return directory


def test_a_skops_model_loads(saved: Path) -> None:
    loaded = load_sklearn_model(saved, "m v1")
    assert loaded.inputs == ["a", "b"] and loaded.model.predict_proba([[0.0, 1.0]]).shape == (1, 2)


def test_mlmodel_cannot_ask_for_pickle(saved: Path) -> None:
    path = saved / "MLmodel"
    meta = yaml.safe_load(path.read_text())
    meta["flavors"]["sklearn"]["serialization_format"] = "cloudpickle"
    path.write_text(yaml.safe_dump(meta))
    with pytest.raises(SignatureError, match="loads only skops models"):
        load_sklearn_model(saved, "m v1")


def test_mlmodel_cannot_trust_more_types(saved: Path) -> None:
    import skops.io

    skops.io.dump({"payload": Weird()}, saved / "model.skops")
    path = saved / "MLmodel"
    meta = yaml.safe_load(path.read_text())
    meta["flavors"]["sklearn"]["skops_trusted_types"] = [f"{__name__}.Weird"]
    path.write_text(yaml.safe_dump(meta))
    with pytest.raises(SignatureError, match="would construct types nobody trusted"):
        load_sklearn_model(saved, "m v1")
