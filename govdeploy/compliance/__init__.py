"""Compliance checks as code: the configuration, keys, retention and serving evidence of a
deployment, checked in one run (``govdeploy compliance check``, CI and the nightly ``compliance``
flow) into one report with a status and the evidence of each check.

- ``govdeploy.compliance.report``  the report, its statuses and exit code, and ``run_checks``
- ``govdeploy.compliance.config_checks``  config digests, policy and governance lint, approvers, access
- ``govdeploy.compliance.state_checks``  keys due for rotation or near expiry, retention overdue, and
  (with the stack) the evidence of every serving version
"""
