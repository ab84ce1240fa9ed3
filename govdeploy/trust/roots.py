"""The roots of trust of one process, from the server-side configuration only.

Everything a verification decides with: the pinned public keys of each role (``config/trust.yaml``),
the approver list (``config/approvers.yaml``) and the policy's approval rules. Nothing here comes
from MLflow, Prefect or the bucket: tags, aliases, flow parameters and objects are hints that must
agree with what verifies under these roots. Loaded once per decision; a missing or unusable key is a
ConfigError (fail closed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from govdeploy.config.approvers import Approvers, load_approvers
from govdeploy.config.policy import ApprovalPolicy, load_policy
from govdeploy.config.settings import Settings
from govdeploy.config.trust import Role
from govdeploy.trust.approver_keys import approver_keys
from govdeploy.trust.keys import trusted_keys


@dataclass(frozen=True)
class TrustRoots:
    keys_dir: Path
    keys: dict[Role, list[Path]]
    approvers: Approvers
    approval: ApprovalPolicy

    def signers(self, role: Role) -> list[Path]:
        """The public key files a ``role`` signature may verify under (valid now)."""
        return self.keys[role]


def load_roots(settings: Settings) -> TrustRoots:
    """The roots of ``settings``: keys of the signing roles, approvers and their keys, approval rules."""
    keys: dict[Role, list[Path]] = {
        role: trusted_keys(settings, role) for role in ("candidate", "release", "serving")
    }
    approvers = load_approvers(settings.approvers_path)
    approver_keys(approvers, settings.keys_dir)
    return TrustRoots(settings.keys_dir, keys, approvers, load_policy(settings.policy_path).approval)
