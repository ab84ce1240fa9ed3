"""The training reference of a model version: the snapshot drift is measured against.

At registration the training rows' features, the model's score on them and the label are written
as ``reference.parquet`` into the version's artifact directory, with ``reference_profile.json``
(numeric ranges, categories) for the gateway's input checks. Both are signed with the model, so
the drift flow and the gateway only ever use a reference whose signature verifies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from govdeploy.config.catalog import ModelSpec
from govdeploy.errors import DataError
from govdeploy.trust.versions import PROFILE_FILE, REFERENCE_FILE

PREDICTION = "prediction"


def build_reference(spec: ModelSpec, model: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """Features, the model's score and the label of every training row (no personal data)."""
    missing = [c for c in [*spec.features, spec.label] if c not in frame.columns]
    if missing:
        raise DataError(f"training data lacks {missing}; the reference needs every feature and the label")
    reference = frame[spec.features].copy()
    reference[PREDICTION] = model.predict_proba(frame[spec.features])[:, 1].astype(float)
    reference[spec.label] = frame[spec.label].astype(int).to_numpy()
    return reference.reset_index(drop=True)


def build_profile(spec: ModelSpec, reference: pd.DataFrame) -> dict[str, Any]:
    """Ranges of numeric features and the categories seen, for real-time input checks."""
    numeric = {
        column: {"min": float(np.nanmin(values)), "max": float(np.nanmax(values))}
        for column in spec.numeric_features
        if len(values := reference[column].to_numpy(dtype=float))
    }
    categorical = {
        column: sorted(str(v) for v in reference[column].dropna().unique())
        for column in spec.categorical_features
    }
    return {"numeric": numeric, "categorical": categorical, "rows": len(reference)}


def write_reference(directory: Path, spec: ModelSpec, reference: pd.DataFrame) -> list[Path]:
    """Write ``reference.parquet`` and ``reference_profile.json`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    data, profile = directory / REFERENCE_FILE, directory / PROFILE_FILE
    reference.to_parquet(data, index=False)
    profile.write_text(json.dumps(build_profile(spec, reference), indent=2, sort_keys=True), encoding="utf-8")
    return [data, profile]


def read_reference(directory: Path, spec: ModelSpec) -> pd.DataFrame:
    """The reference of a verified artifact directory; DataError when absent or incomplete."""
    path = directory / REFERENCE_FILE
    if not path.is_file():
        raise DataError(
            f"{path.name} is not among the signed artifacts of this version; versions registered before "
            "references were logged cannot be checked for drift: retrain and release a new version"
        )
    try:
        reference = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path.name} is unreadable: {exc}") from exc
    missing = [c for c in [*spec.features, PREDICTION] if c not in reference.columns]
    if missing:
        raise DataError(f"{path.name} lacks columns {missing}; retrain to log a complete reference")
    return reference
