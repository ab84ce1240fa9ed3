"""Fitting the scikit-learn pipeline of a catalogued model."""

from __future__ import annotations

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from govdeploy.config.catalog import ModelSpec
from govdeploy.errors import DataError
from govdeploy.release.evaluation import performance_metrics, require_columns


def build_pipeline(spec: ModelSpec, positive_weight: float = 1.0) -> Pipeline:
    """Scaled numeric features and one-hot categories into a logistic regression.

    ``positive_weight`` > 1 weights the positive class up in the fit: the ranking stays, the scores rise.
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
            ("classifier", LogisticRegression(max_iter=1000, class_weight=_class_weight(positive_weight))),
        ]
    )


def _class_weight(positive_weight: float) -> dict[int, float] | None:
    if not positive_weight > 0:
        raise DataError(f"positive_weight={positive_weight} must be positive (1 = unweighted)")
    return None if positive_weight == 1.0 else {0: 1.0, 1: positive_weight}


def fit(
    spec: ModelSpec,
    train: pd.DataFrame,
    test: pd.DataFrame,
    positive_weight: float = 1.0,
) -> tuple[Pipeline, dict[str, float]]:
    """Fit on ``train`` and report holdout metrics on ``test``."""
    require_columns(train, [*spec.features, spec.label], "training data")
    model = build_pipeline(spec, positive_weight).fit(train[spec.features], train[spec.label].astype(int))
    scores = model.predict_proba(test[spec.features])[:, 1]
    holdout = performance_metrics(
        test[spec.label].to_numpy(dtype=int), model.predict(test[spec.features]), scores
    )
    return model, holdout
