"""The ``compliance`` flow: nightly retention of the I/O log, then every compliance check.

Served nightly (``retention.schedule`` of the policy) and on demand. Retention deletes the I/O log's
days past ``retention.io_log_days`` (each day an audit record ``retention.deleted``); the checks
then run against the configuration, the keys, the bucket and the registry. The verdict is an audit
record ``compliance.checked``; anything but a pass is alerted and fails the run.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from govdeploy.errors import GovdeployError
from tasks.compliance import check_compliance, enforce_retention, record_compliance


@flow(name="compliance", log_prints=True)
def compliance(registry: bool = True, dry_run: bool = False) -> dict[str, Any]:
    """Enforce the I/O log's retention, check compliance, record and alert the verdict.

    Args:
        registry: Also check the bucket and the serving versions' evidence (needs the stack).
        dry_run: Report what is past retention without deleting it.
    """
    # Stage 1: retention of the I/O log (bucket and local spool), each day deleted audited
    retention = enforce_retention(dry_run)

    # Stage 2: every compliance check, into one report
    report = check_compliance(registry)

    # Stage 3: the verdict in the audit trail; an alert when it is not a pass
    recorded = record_compliance(report, retention)
    if report.status != "pass" or not retention.ok:
        problems = [*recorded["failures"], *(f"retention: {p}" for p in retention.problems)]
        raise GovdeployError(f"compliance check {report.status}: {'; '.join(problems)}")
    return {"status": report.status, "retention_days_deleted": len(retention.deleted), **recorded}


if __name__ == "__main__":
    print(compliance())
