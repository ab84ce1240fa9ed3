"""The vulnerability gate: a CycloneDX SBOM against OSV advisories from a mirror or OSV's API (a fake
HTTP transport here: the real service is not reachable from these machines), and its checks in the
gate report."""

from __future__ import annotations

import json
import shutil
import zipfile
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pytest

from govdeploy.config.policy import VulnerabilityGate, load_policy
from govdeploy.errors import GateError, PolicyGateError
from govdeploy.release.gate import GateReport, require_pass, vulnerability_checks
from govdeploy.release.vulnerabilities import read_sbom, sbom_packages, scan
from tests.conftest import CONFIG_DIR

HERE = Path(__file__).parent / "osv"
SBOM: dict[str, Any] = json.loads((HERE / "sbom.cdx.json").read_text())
RECORDS: list[dict[str, Any]] = json.loads((HERE / "advisories.json").read_text())


def gate(**settings: Any) -> VulnerabilityGate:
    return VulnerabilityGate.model_validate({"file": "advisories.json", **settings})


def report(found: Any) -> GateReport:
    return GateReport(model="m", version="1", policy_digest="p" * 64, checks=vulnerability_checks(found))


def test_sbom_packages_are_the_pypi_components_nested_ones_included() -> None:
    packages = dict(sbom_packages(SBOM))
    assert packages["mlflow-skinny"] == "3.17.2" and packages["Jinja2"] == "3.1.6"
    assert "libssl" not in packages and len(packages) == 8


def test_an_advisory_at_or_above_the_severity_blocks_with_id_package_version_and_fix() -> None:
    found = scan(SBOM, gate(), HERE, today=date(2026, 11, 30))
    assert found.error is None and found.packages == 8
    assert [(f.advisory, f.counted_as, f.fixed) for f in found.blocking] == [
        ("GDTEST-2026-0004", "CRITICAL", None),  # unrated: counts as the policy's unrated_as
        ("GDTEST-2026-0002", "HIGH", "2.35.0"),
        ("GDTEST-2026-0009", "HIGH", "3.18.0-rc.1"),  # CVSS v2 7.5, a nested component
    ]
    below = {f.advisory: f.counted_as for f in found.findings if not f.blocking}
    assert below == {"GDTEST-2026-0003": "MEDIUM", "GDTEST-2026-0005": "LOW"}
    decided = report(found)
    assert not decided.passed
    with pytest.raises(PolicyGateError) as refused:
        require_pass(decided)
    message = str(refused.value)
    assert "GDTEST-2026-0002 (CVE-2026-90002) affects requests 2.34.2, severity HIGH" in message
    assert "upgrade requests to 2.35.0 or later" in message
    assert "PyYAML 6.0.3, severity unrated, counted as CRITICAL" in message
    assert "no fixed version is known" in message
    [summary] = [c for c in decided.checks if c.name == "dependencies scanned"]
    assert summary.passed and summary.value == "8 packages, 3 blocking, 2 below HIGH, 0 ignored"
    assert "sha256" in summary.reason and "9 advisories" in summary.reason


def test_advisories_the_locked_versions_are_outside_of_pass(tmp_path: Path) -> None:
    outside = [r for r in RECORDS if r["id"] in ("GDTEST-2026-0001", "GDTEST-2026-0006", "GDTEST-2026-0007")]
    (tmp_path / "outside.json").write_text(json.dumps(outside))
    found = scan(SBOM, gate(file="outside.json"), tmp_path)
    assert found.error is None and found.findings == []
    assert report(found).passed


def test_a_higher_threshold_lets_lower_advisories_through() -> None:
    found = scan(SBOM, gate(max_severity="CRITICAL", unrated_as="MEDIUM"), HERE)
    assert found.blocking == [] and len(found.findings) == 5


def test_ignored_advisories_do_not_block_until_their_day_passes() -> None:
    ignore = [
        {
            "id": "CVE-2026-90002",
            "reason": "our code never follows redirects with proxies",
            "until": "2026-12-31",
        },
        {"id": "GDTEST-2026-0004", "reason": "only safe_load is used on trusted files"},
    ]
    found = scan(SBOM, gate(ignore=ignore), HERE, today=date(2026, 12, 31))
    assert [f.advisory for f in found.blocking] == ["GDTEST-2026-0009"]
    assert {f.advisory: f.ignored for f in found.findings if f.ignored} == {
        "GDTEST-2026-0002": "our code never follows redirects with proxies",
        "GDTEST-2026-0004": "only safe_load is used on trusted files",
    }
    assert "ignored by the policy (our code never follows" in report(found).checks[0].reason
    lapsed = scan(SBOM, gate(ignore=ignore), HERE, today=date(2027, 1, 1))
    assert "GDTEST-2026-0002" in [f.advisory for f in lapsed.blocking]


def test_a_mirror_can_be_a_zip_or_a_directory_of_records(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with zipfile.ZipFile(tmp_path / "all.zip", "w") as archive:
        for item in RECORDS:
            archive.writestr(f"{item['id']}.json", json.dumps(item))
            (tmp_path / "dir" / f"{item['id']}.json").write_text(json.dumps(item))
    expected = [f.advisory for f in scan(SBOM, gate(), HERE).blocking]
    for name in ("all.zip", "dir"):
        assert [f.advisory for f in scan(SBOM, gate(file=name), tmp_path).blocking] == expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist; set gates.vulnerabilities.file"),
        ("{not json", "is not JSON"),
        ('[{"summary": "no id"}]', "is not an OSV record (id: Field required)"),
        ('[{"id": "X-1", "affected": [{"package": {"name": "p"}}]}]', "advisory 'X-1'"),
    ],
)
def test_an_unreadable_mirror_fails_the_gate(tmp_path: Path, content: str | None, expected: str) -> None:
    if content is not None:
        (tmp_path / "advisories.json").write_text(content)
    found = scan(SBOM, gate(), tmp_path)
    assert found.error is not None and expected in found.error
    [check] = report(found).checks
    assert not check.passed and check.value == "not scanned" and expected in check.reason


class FakeOsv:
    """OSV's API as the fake transport answers it: querybatch with ids, vulns/{id} with records."""

    def __init__(self, records: list[dict[str, Any]], page_size: int = 100) -> None:
        self.by_id = {r["id"]: r for r in records}
        self.page_size = page_size
        self.requests: list[str] = []

    def ids(self, query: dict[str, Any]) -> list[str]:
        from govdeploy.release.osv import OsvRecord, matches

        name, version = query["package"]["name"], query["version"]
        return [i for i, r in self.by_id.items() if matches(OsvRecord.model_validate(r), name, version)]

    def page(self, query: dict[str, Any]) -> dict[str, Any]:
        ids, start = self.ids(query), int(query.get("page_token") or 0)
        answer: dict[str, Any] = {"vulns": [{"id": i, "modified": "2026-11-30T00:00:00Z"} for i in ids]}
        answer["vulns"] = answer["vulns"][start : start + self.page_size]
        if start + self.page_size < len(ids):
            answer["next_page_token"] = str(start + self.page_size)
        return answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        if request.url.path == "/v1/querybatch":
            queries = json.loads(request.content)["queries"]
            return httpx.Response(200, json={"results": [self.page(q) for q in queries]})
        if request.url.path == "/v1/query":
            return httpx.Response(200, json=self.page(json.loads(request.content)))
        advisory = request.url.path.removeprefix("/v1/vulns/")
        if advisory in self.by_id:
            return httpx.Response(200, json=self.by_id[advisory])
        return httpx.Response(404, json={"code": 5, "message": "Bug not found."})


def client(handler: Any) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler), base_url="https://api.osv.dev")


def test_the_osv_api_is_asked_in_one_batch_then_for_each_advisory() -> None:
    fake = FakeOsv(RECORDS, page_size=1)
    found = scan(SBOM, gate(source="osv-api"), HERE, client=client(fake))
    assert found.error is None and found.source == "OSV API https://api.osv.dev"
    assert [f.advisory for f in found.blocking] == [
        "GDTEST-2026-0004",
        "GDTEST-2026-0002",
        "GDTEST-2026-0009",
    ]
    assert fake.requests.count("POST /v1/querybatch") == 1
    assert sorted(r for r in fake.requests if r.startswith("GET")) == [
        f"GET /v1/vulns/GDTEST-2026-000{n}" for n in (2, 3, 4, 5, 9)
    ]


def test_an_advisory_only_the_api_can_match_still_counts() -> None:
    """The service evaluates more than this gate does (commits): what it finds is a finding."""
    git_only = {
        "id": "GDTEST-2026-0010",
        "modified": "2026-11-30T00:00:00Z",
        "affected": [
            {"package": {"ecosystem": "PyPI", "name": "numpy"}, "ranges": [{"type": "GIT", "events": []}]}
        ],
    }

    class CommitAware(FakeOsv):
        def ids(self, query: dict[str, Any]) -> list[str]:
            return ["GDTEST-2026-0010"] if query["package"]["name"] == "numpy" else []

    found = scan(SBOM, gate(source="osv-api"), HERE, client=client(CommitAware([git_only])))
    [finding] = found.findings
    assert finding.blocking and finding.note == "affected according to https://api.osv.dev"


def unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno -3] Temporary failure in name resolution", request=request)


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (unreachable, "https://api.osv.dev cannot be reached (ConnectError"),
        (lambda request: httpx.Response(503, text="unavailable"), "answered HTTP 503: unavailable"),
        (lambda request: httpx.Response(200, text="<html>"), "answered something that is not JSON"),
        (lambda request: httpx.Response(200, json={"results": []}), "answered 8 queries with"),
    ],
)
def test_an_unreachable_or_broken_api_fails_closed(handler: Any, expected: str) -> None:
    found = scan(SBOM, gate(source="osv-api"), HERE, client=client(handler))
    assert found.error is not None and expected in found.error
    assert "the candidate's dependencies were not scanned, so the gate fails" in found.error
    assert "when_unreachable: file" in found.error
    assert not report(found).passed


def test_an_unreachable_api_falls_back_to_the_mirror_when_the_policy_says_so() -> None:
    found = scan(SBOM, gate(source="osv-api", when_unreachable="file"), HERE, client=client(unreachable))
    assert found.error is None and found.source.startswith(f"mirror {HERE / 'advisories.json'}")
    assert found.fallback is not None and "cannot be reached" in found.fallback
    assert "the advisory service could not be reached" in report(found).checks[0].reason
    assert len(found.blocking) == 3


def test_the_shipped_policy_passes_the_installed_environment_with_the_shipped_mirror() -> None:
    policy = load_policy(CONFIG_DIR / "policy.yaml")
    assert policy.gates.vulnerabilities is not None
    installed = {d.metadata["Name"]: d.version for d in metadata.distributions()}
    sbom = {
        "bomFormat": "CycloneDX",
        "components": [
            {"name": name, "version": version, "purl": f"pkg:pypi/{name.lower()}@{version}"}
            for name, version in installed.items()
        ],
    }
    found = scan(sbom, policy.gates.vulnerabilities, CONFIG_DIR)
    assert found.error is None and found.blocking == [], [f.reason for f in found.blocking]
    assert found.packages == len(set(installed.items()))
    assert report(found).passed


def test_the_sbom_must_be_a_cyclonedx_document(tmp_path: Path) -> None:
    with pytest.raises(GateError, match="carries no SBOM"):
        read_sbom(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text('{"spdxVersion": "SPDX-2.3"}')
    with pytest.raises(GateError, match="is not a CycloneDX SBOM"):
        read_sbom(tmp_path / "other.json")
    shutil.copy(HERE / "sbom.cdx.json", tmp_path / "sbom.json")
    assert read_sbom(tmp_path / "sbom.json")["bomFormat"] == "CycloneDX"
