"""The model call of a batch: typed columns give the scores a frame of the raw values gives."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from govdeploy.serving.gateway.state import _predictor

TYPES = {"income": "double", "term": "long", "region": "string"}


def test_typed_columns_score_as_the_frame_pandas_infers() -> None:
    rng = np.random.default_rng(7)
    train = pd.DataFrame(
        {
            "income": rng.normal(50_000, 9_000, 300),
            "term": rng.choice([12, 36, 60], 300),
            "region": rng.choice(["north", "south", "east"], 300),
        }
    )
    model = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("numeric", StandardScaler(), ["income", "term"]),
                        ("categorical", OneHotEncoder(), ["region"]),
                    ]
                ),
            ),
            ("classifier", LogisticRegression()),
        ]
    ).fit(train, rng.integers(0, 2, 300))
    verified = SimpleNamespace(model=model, inputs=list(TYPES), input_types=TYPES)
    frame = {
        "income": [52_000.0, 18_500.5, 91_000.0],
        "term": [36, 12, 60],
        "region": ["north", "east", "south"],
    }
    expected = model.predict_proba(pd.DataFrame(frame, columns=list(TYPES)))[:, 1]
    scores = _predictor(verified)(frame)  # type: ignore[arg-type]
    assert scores.tolist() == expected.tolist()
