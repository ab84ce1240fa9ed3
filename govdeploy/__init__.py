"""govdeploy: a workflow-orchestrated MLOps pipeline for secure, governed model deployment.

The ``govdeploy`` package is the Prefect-free core: settings, policy-as-code, data generation and
validation, evaluation and gates, registry access and the local stack. Prefect tasks in ``tasks/``
wrap it; flows in ``flows/`` wire the tasks.
"""

__version__ = "0.1.0"
