"""Everything a decision about one model needs from config/: policy, catalog entry, suite.

Loaded together so that the files are also checked against each other.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from govdeploy.config.catalog import ModelSpec, load_catalog
from govdeploy.config.policy import Policy, load_policy
from govdeploy.config.suites import Suite, load_suite, suite_path
from govdeploy.errors import ConfigError


class Governance(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    policy: Policy
    spec: ModelSpec
    suite: Suite


def load_governance(config_dir: Path, model: str, policy_path: Path | None = None) -> Governance:
    """Load and cross-check the policy, the model's catalog entry and its expectation suite."""
    policy = load_policy(policy_path or config_dir / "policy.yaml")
    spec = load_catalog(config_dir / "models.yaml").get(model)
    suite = load_suite(suite_path(config_dir / "expectations", policy.gates.data_validation.suite))
    check_consistency(policy, model, spec)
    return Governance(model=model, policy=policy, spec=spec, suite=suite)


def check_consistency(policy: Policy, model: str, spec: ModelSpec) -> None:
    """The policy's fairness attributes and PII columns must match the catalog entry."""
    missing = sorted(set(policy.gates.fairness.attributes) - set(spec.sensitive_attributes))
    if missing:
        raise ConfigError(
            f"policy gates.fairness.attributes {missing} are not sensitive_attributes of model "
            f"{model!r} in models.yaml; add them there or remove them from the policy"
        )
    unguarded = sorted(set(spec.pii_columns) - set(policy.gates.privacy.pii_columns))
    if unguarded:
        raise ConfigError(
            f"PII columns {unguarded} of model {model!r} are not in the policy's "
            "gates.privacy.pii_columns; add them so the privacy gate guards them"
        )
