"""Where advisories come from: a local mirror in OSV format, or OSV's API.

``Mirror`` reads a file of OSV records: one record, a JSON list of records, a directory of ``.json``
records, or a ``.zip`` of them (osv.dev publishes each ecosystem as such a zip, e.g. the PyPI one,
for an offline mirror). A mirror that cannot be read, or a record that is not an OSV record, is an
error naming the file and the entry: the gate then fails, it never scans against part of a file.

``query_api`` asks OSV's ``/v1/querybatch`` for the advisories of every package version at once,
then ``/v1/vulns/{id}`` for each one found (the batch answers with ids only). Every failure —
unreachable, a timeout, an HTTP error, an answer that is not what the API returns — is a
``GateError`` saying so: the caller fails closed or falls back to the mirror, as the policy says.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from govdeploy.errors import ConfigError, GateError
from govdeploy.release.osv import OsvRecord, normalize, packages_of

BATCH = 1000  # queries per querybatch request (the API's limit)
MAX_PAGES = 20  # further pages of one package's advisories before giving up (fail closed)


def _records(data: Any, where: str) -> Iterator[OsvRecord]:
    for item in data if isinstance(data, list) else [data]:
        try:
            yield OsvRecord.model_validate(item)
        except ValidationError as exc:
            shown = item.get("id") if isinstance(item, dict) else type(item).__name__
            problem = exc.errors(include_url=False)[0]
            place = ".".join(str(p) for p in problem["loc"])
            raise ConfigError(
                f"advisory {shown!r} in {where} is not an OSV record ({place}: {problem['msg']}); "
                "fix or replace the mirror"
            ) from None


def _parse(text: str | bytes, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"advisory file {where} is not JSON ({exc}); fix or replace the mirror") from None


def _documents(path: Path) -> Iterator[tuple[str, bytes]]:
    if path.is_dir():
        for member in sorted(path.rglob("*.json")):
            yield str(member), member.read_bytes()
    elif path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            for name in sorted(archive.namelist()):
                if name.endswith(".json"):
                    yield f"{path}:{name}", archive.read(name)
    else:
        yield str(path), path.read_bytes()


@dataclass
class Mirror:
    """The records of a mirror, indexed by the PyPI packages they affect."""

    path: Path
    digest: str
    by_package: dict[str, list[OsvRecord]] = field(default_factory=dict)
    count: int = 0

    def advisories(self, package: str) -> list[OsvRecord]:
        return self.by_package.get(normalize(package), [])


def load_mirror(path: Path) -> Mirror:
    """Every OSV record of ``path``; ConfigError naming the file when it cannot be read."""
    if not path.exists():
        raise ConfigError(
            f"advisory file {path} does not exist; set gates.vulnerabilities.file in the policy to an "
            "OSV mirror (e.g. osv.dev's PyPI export) or use source: osv-api"
        )
    digest, mirror = hashlib.sha256(), Mirror(path, "")
    try:
        for where, raw in _documents(path):
            digest.update(where.encode() + b"\0" + raw)
            for record in _records(_parse(raw, where), where):
                mirror.count += 1
                for name in packages_of(record):
                    mirror.by_package.setdefault(name, []).append(record)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"advisory file {path} cannot be read: {exc}") from exc
    mirror.digest = digest.hexdigest()
    return mirror


def _post(client: httpx.Client, url: str, body: dict[str, Any]) -> Any:
    return _answer(client.post(url, json=body), url)


def _answer(response: httpx.Response, url: str) -> Any:
    if response.status_code != 200:
        raise GateError(f"{url} answered HTTP {response.status_code}: {response.text[:200]}")
    try:
        return response.json()
    except ValueError:
        raise GateError(f"{url} answered something that is not JSON: {response.text[:200]!r}") from None


def _query(package: str, version: str, page: str | None = None) -> dict[str, Any]:
    query: dict[str, Any] = {"package": {"name": package, "ecosystem": "PyPI"}, "version": version}
    return {**query, "page_token": page} if page else query


def _ids(client: httpx.Client, api: str, package: str, version: str, result: dict[str, Any]) -> set[str]:
    """The advisory ids of one batch result, with the further pages of a long answer."""
    found = {str(v["id"]) for v in result.get("vulns") or []}
    page, pages = result.get("next_page_token"), 0
    while page:
        pages += 1
        if pages > MAX_PAGES:
            raise GateError(f"{package} {version} has more advisory pages than {MAX_PAGES} at {api}")
        more = _post(client, f"{api}/v1/query", _query(package, version, page))
        found |= {str(v["id"]) for v in more.get("vulns") or []}
        page = more.get("next_page_token")
    return found


def query_api(
    packages: Iterable[tuple[str, str]], api: str, client: httpx.Client
) -> dict[tuple[str, str], list[OsvRecord]]:
    """The OSV records the API finds for each (package, version); GateError when it cannot say."""
    wanted = list(packages)
    ids: dict[tuple[str, str], set[str]] = {}
    try:
        for start in range(0, len(wanted), BATCH):
            chunk = wanted[start : start + BATCH]
            answer = _post(client, f"{api}/v1/querybatch", {"queries": [_query(*p) for p in chunk]})
            results = answer.get("results") if isinstance(answer, dict) else None
            if not isinstance(results, list) or len(results) != len(chunk):
                raise GateError(f"{api}/v1/querybatch answered {len(chunk)} queries with {answer!r:.200}")
            for item, result in zip(chunk, results, strict=True):
                ids[item] = _ids(client, api, *item, result or {})
        records = {i: _record(client, api, i) for i in sorted(set().union(*ids.values()))}
    except httpx.HTTPError as exc:
        raise GateError(f"{api} cannot be reached ({type(exc).__name__}: {exc})") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise GateError(f"{api} answered in an unexpected form ({type(exc).__name__}: {exc})") from None
    return {item: [records[i] for i in sorted(found)] for item, found in ids.items()}


def _record(client: httpx.Client, api: str, advisory: str) -> OsvRecord:
    url = f"{api}/v1/vulns/{quote(advisory, safe='')}"
    try:
        return next(_records(_answer(client.get(url), url), url))
    except ConfigError as exc:
        raise GateError(str(exc)) from None
