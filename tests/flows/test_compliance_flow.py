"""The nightly compliance flow on the real stack: I/O log days past retention deleted in the bucket
and the local spool (each audited), the compliance checks run against the stack, the verdict audited."""

from __future__ import annotations

import pytest
from prefect.client.orchestration import get_client

from govdeploy.backends.storage import s3_client
from govdeploy.config.settings import Settings
from govdeploy.trust.audit_trail import records

pytestmark = pytest.mark.e2e

OLD = "20200101"
NAME = "010203000000-0123456789abcdef-00000001-00000000.jsonl.enc"


def test_the_nightly_compliance_enforces_retention_and_records_its_verdict(stack: Settings) -> None:
    from flows.compliance import compliance

    client = s3_client(stack)
    client.put_object(Bucket=stack.bucket, Key=f"iolog/{OLD}/{NAME}", Body=b"sealed")
    spool = stack.state_dir / "iolog" / OLD
    spool.mkdir(parents=True, exist_ok=True)
    (spool / NAME).write_bytes(b"sealed")

    result = compliance(registry=True)

    assert result["status"] == "pass", result
    listed = client.list_object_versions(Bucket=stack.bucket, Prefix=f"iolog/{OLD}/")
    assert not listed.get("Versions") and not listed.get("DeleteMarkers")
    assert not spool.exists()
    trail = records(stack)
    deleted = [r.payload for r in trail if r.action == "retention.deleted" and r.payload["day"] == OLD]
    assert sorted(p["where"] for p in deleted) == ["bucket", "local"]
    assert trail[-1].action == "compliance.checked" and trail[-1].payload["status"] == "pass"
    assert trail[-1].payload["checks"]["serving.evidence"] == "pass"

    with get_client(sync_client=True) as prefect:
        nightly = prefect.read_deployment_by_name("compliance/nightly-compliance")
    assert [s.schedule.cron for s in nightly.schedules if hasattr(s.schedule, "cron")] == ["0 3 * * *"]
