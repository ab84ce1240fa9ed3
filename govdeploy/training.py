"""Fitting the scikit-learn pipeline of a catalogued model."""

from __future__ import annotations

from typing import Literal

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from govdeploy.catalog import ModelSpec
from govdeploy.evaluation import performance_metrics, require_columns


def build_pipeline(spec: ModelSpec, class_weight: Literal["balanced"] | None = None) -> Pipeline:
    """Scaled numeric features and one-hot categories into a logistic regression.

    ``class_weight="balanced"`` weights the rarer class up: the ranking stays, the scores rise.
    """
    preprocess = ColumnTransformer(
        [
            ("numeric", StandardScaler(), spec.numeric_features),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                spec.categorical_features,
            ),
        ]
    )
    return Pipeline(
        [
            ("preprocess", preprocess),
            ("classifier", LogisticRegression(max_iter=1000, class_weight=class_weight)),
        ]
    )


def fit(
    spec: ModelSpec,
    train: pd.DataFrame,
    test: pd.DataFrame,
    class_weight: Literal["balanced"] | None = None,
) -> tuple[Pipeline, dict[str, float]]:
    """Fit on ``train`` and report holdout metrics on ``test``."""
    require_columns(train, [*spec.features, spec.label], "training data")
    model = build_pipeline(spec, class_weight).fit(train[spec.features], train[spec.label].astype(int))
    scores = model.predict_proba(test[spec.features])[:, 1]
    holdout = performance_metrics(
        test[spec.label].to_numpy(dtype=int), model.predict(test[spec.features]), scores
    )
    return model, holdout
