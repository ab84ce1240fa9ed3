"""The candidate's model files are written locally (no server), in the layout a verifier loads."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression

from govdeploy.backends.model_files import load_sklearn_model
from govdeploy.backends.tracking import OpenCandidate, save_model_files
from govdeploy.errors import RegistryError

OPENED = OpenCandidate("m", "4", "run-1", "m-0123", "mlflow-artifacts:/1/models/m-0123/artifacts")


def fitted() -> tuple[LogisticRegression, pd.DataFrame]:
    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    return LogisticRegression().fit(frame, [0, 1, 0, 1]), frame


def test_model_files_are_saved_locally_with_mlmodel_at_the_root(tmp_path: Path) -> None:
    model, frame = fitted()
    directory = save_model_files(
        tmp_path / "model", OPENED, model=model, input_example=frame.head(2), pip_requirements=["pandas"]
    )
    meta = yaml.safe_load((directory / "MLmodel").read_text())
    assert (meta["model_id"], meta["run_id"]) == ("m-0123", "run-1")
    assert meta["flavors"]["sklearn"]["serialization_format"] == "skops"
    assert {"model.skops", "requirements.txt", "input_example.json"} <= {p.name for p in directory.iterdir()}
    assert not list(directory.rglob("__pycache__"))
    assert load_sklearn_model(directory, "m v4").inputs == ["a", "b"]
    assert OPENED.model_uri == "models:/m-0123"


def test_an_existing_directory_is_refused(tmp_path: Path) -> None:
    model, frame = fitted()
    with pytest.raises(RegistryError, match="already exists"):
        save_model_files(tmp_path, OPENED, model=model, input_example=frame, pip_requirements=["pandas"])
