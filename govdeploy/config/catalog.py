"""The model catalog, ``config/models.yaml``: what each governed model is and who owns it.

For every registered model name: its features, label, sensitive attributes, personal-data
columns of its dataset, the expectation suite of that dataset, and the custodians of its data,
model and outputs (recorded on every version it gets).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import EmailStr, Field, model_validator

from govdeploy.config.files import StrictModel, load_yaml, parse_model
from govdeploy.errors import ConfigError


class Custodian(StrictModel):
    name: str = Field(min_length=1)
    email: EmailStr


class Owners(StrictModel):
    """Who answers for the data, the model and what it outputs."""

    data: Custodian
    model: Custodian
    output: Custodian


class ModelSpec(StrictModel):
    """One governed model."""

    description: str = ""
    dataset: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    label: str = Field(min_length=1)
    numeric_features: list[str] = Field(default_factory=list)
    categorical_features: list[str] = Field(default_factory=list)
    sensitive_attributes: list[str] = Field(default_factory=list)
    pii_columns: list[str] = Field(default_factory=list)
    owners: Owners

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        features = self.features
        if not features:
            raise ValueError("numeric_features and categorical_features are both empty")
        clash = sorted(set(features) & ({self.label} | set(self.pii_columns)))
        if clash:
            raise ValueError(f"{clash} cannot be features: the label and PII columns never are")
        if len(set(features)) != len(features):
            raise ValueError("a feature is listed twice")
        return self

    @property
    def features(self) -> list[str]:
        return [*self.numeric_features, *self.categorical_features]


class Catalog(StrictModel):
    models: dict[str, ModelSpec] = Field(min_length=1)

    def get(self, name: str) -> ModelSpec:
        try:
            return self.models[name]
        except KeyError:
            raise ConfigError(
                f"model {name!r} is not in the catalog; known models: {sorted(self.models)} "
                "(add it to config/models.yaml)"
            ) from None


def load_catalog(path: Path) -> Catalog:
    """Load and validate config/models.yaml."""
    return parse_model(Catalog, load_yaml(path, "model catalog"), path, "model catalog")
