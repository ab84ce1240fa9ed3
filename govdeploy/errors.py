"""The one exception tree of govdeploy.

Every error govdeploy raises on purpose derives from ``GovdeployError``; its message names the
offending value and the fix, so the CLI can print it as is, without a traceback.

    GovdeployError
    ├── ConfigError            a config file (policy, expectations, owners) is unreadable or invalid
    ├── DataError              a dataset is missing, empty or malformed
    ├── StackError             a component of the local stack failed to start, stop or answer
    ├── RegistryError          the MLflow registry refused or lacks what was asked for
    ├── StorageError           an object of the bucket cannot be read or written
    ├── AuditError             the audit trail cannot be written or does not verify
    ├── SignatureError         model artifacts do not verify against a trusted signature
    ├── CryptoError            encrypted data does not open (wrong key, moved, or altered)
    ├── ApprovalError          approvals were refused, rejected or did not arrive in time
    │   └── ApprovalTimeoutError   no quorum before the approval window closed
    ├── RolloutError           a canary breached the policy and was rolled back
    └── GateError              a release gate rejected the candidate
        ├── ValidationGateError    data validation (Great Expectations) failed
        └── PolicyGateError        evaluation results breach the policy
"""

from __future__ import annotations


class GovdeployError(Exception):
    """Base of every error govdeploy raises on purpose."""


class ConfigError(GovdeployError):
    """A configuration file is unreadable or does not match its schema."""


class DataError(GovdeployError):
    """A dataset is missing, empty or malformed."""


class StackError(GovdeployError):
    """A component of the local stack failed to start, stop or answer."""


class RegistryError(GovdeployError):
    """The model registry refused a request or lacks the model, version or alias asked for."""


class StorageError(GovdeployError):
    """An object of the artifact bucket cannot be read or written (or is missing where required)."""


class AuditError(GovdeployError):
    """The audit trail cannot be written, or it does not verify."""


class SignatureError(GovdeployError):
    """Model artifacts do not verify against a trusted signature; nothing was loaded."""


class CryptoError(GovdeployError):
    """A ciphertext does not open: wrong key, wrong object id, or it was altered."""


class ApprovalError(GovdeployError):
    """The release got a rejection from an authorised approver, or no quorum before the timeout."""


class ApprovalTimeoutError(ApprovalError):
    """The approval window closed before the quorum; nothing was promoted."""


class RolloutError(GovdeployError):
    """A canary step breached the policy's limits; traffic went back to the champion."""


class GateError(GovdeployError):
    """A release gate rejected the candidate; the message is the plain-language reason."""


class ValidationGateError(GateError):
    """Data validation failed: the batch is empty, a suite is invalid or expectations failed."""


class PolicyGateError(GateError):
    """Evaluation results breach the thresholds of the policy."""
