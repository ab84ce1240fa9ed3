"""Everything a decision about one model needs from config/: policy, catalog entry, suite, and the
approver and access configuration it runs under.

Loaded together so that the files are also checked against each other. ``Governance.digest`` is one
digest over all of them; every decision records it (as its ``policy_digest``), so a change of any
file a decision depended on shows in the record. That includes the advisory mirror the
vulnerability gate scans (``gates.vulnerabilities.file``, relative to the policy's directory) when
the policy names one and it is present: a decision records which advisory data it used (a mirror
that is missing is the gate's failure to report, not the digest's).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from govdeploy.config.approvers import load_approvers
from govdeploy.config.catalog import ModelSpec, load_catalog
from govdeploy.config.files import file_digest
from govdeploy.config.policy import Policy, load_policy
from govdeploy.config.suites import Suite, load_suite, suite_path
from govdeploy.errors import ConfigError


class Governance(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    policy: Policy
    spec: ModelSpec
    suite: Suite
    file_digests: dict[str, str]  # file name → SHA-256 of each file the decision depends on

    @property
    def digest(self) -> str:
        """SHA-256 over the digests of the policy, catalog, approvers, access and suite files, and of
        the advisory mirror when there is one."""
        return hashlib.sha256(json.dumps(self.file_digests, sort_keys=True).encode()).hexdigest()


def load_governance(config_dir: Path, model: str, policy_path: Path | None = None) -> Governance:
    """Load and cross-check the policy, the model's catalog entry and its expectation suite."""
    policy = load_policy(policy_path or config_dir / "policy.yaml")
    spec = load_catalog(config_dir / "models.yaml").get(model)
    suite = load_suite(suite_path(config_dir / "expectations", policy.gates.data_validation.suite))
    check_consistency(policy, model, spec)
    load_approvers(config_dir / "approvers.yaml")
    digests = {
        "policy": policy.digest,
        "models.yaml": file_digest(config_dir / "models.yaml"),
        "approvers.yaml": file_digest(config_dir / "approvers.yaml"),
        "access.yaml": file_digest(config_dir / "access.yaml"),
        f"expectations/{Path(suite.path).name}": suite.digest,
    }
    digests |= advisory_digests(policy, policy_path or config_dir / "policy.yaml")
    return Governance(model=model, policy=policy, spec=spec, suite=suite, file_digests=digests)


def advisory_digests(policy: Policy, policy_path: Path) -> dict[str, str]:
    """``{"advisories/<name>": sha256}`` of the mirror the vulnerability gate scans, if the policy
    names one and it exists; empty otherwise."""
    gate = policy.gates.vulnerabilities
    if gate is None or gate.file is None:
        return {}
    mirror = policy_path.parent / gate.file
    if not mirror.exists():
        return {}
    return {f"advisories/{Path(gate.file).name}": mirror_digest(mirror)}


def mirror_digest(path: Path) -> str:
    """SHA-256 of an advisory mirror: a file's (a JSON file or a zip) bytes, or a directory's
    ``.json`` files by their names relative to it (whatever directory it was copied to)."""
    if not path.is_dir():
        return file_digest(path)
    digest = hashlib.sha256()
    for member in sorted(path.rglob("*.json")):
        digest.update(member.relative_to(path).as_posix().encode() + b"\0" + file_digest(member).encode())
    return digest.hexdigest()


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
