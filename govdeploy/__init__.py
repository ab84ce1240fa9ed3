"""govdeploy: a workflow-orchestrated MLOps pipeline for secure, governed model deployment.

The ``govdeploy`` package is the core, by concern: ``config`` (settings, policy-as-code, catalog,
identities), ``trust`` (keys, signatures, approvals, audit trail, serving records), ``release``
(data to promotion), ``serving`` (gateway, rollout, canary), ``monitoring`` (I/O log, drift,
alerts), ``backends`` (the only clients of MLflow, S3 and Prefect) and ``stack`` (the local stack).
Prefect tasks in ``tasks/`` wrap it; flows in ``flows/`` wire the tasks. ARCHITECTURE.md is the map.
"""

__version__ = "0.1.0"
