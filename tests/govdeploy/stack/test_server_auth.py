"""MLflow and Prefect of the local stack demand credentials: anonymous writes get 401, the read-only
viewer gets 403 on writes, govdeploy's service account works (session stack of ``govdeploy up``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import mlflow
import pytest

from govdeploy.backends import flow_runs
from govdeploy.config.settings import Settings
from govdeploy.errors import GovdeployError
from govdeploy.stack import credentials, manager

pytestmark = pytest.mark.integration

MODEL = "auth-probe"
Auth = tuple[str, str] | None


@pytest.fixture(scope="module")
def version(stack: Settings) -> Iterator[str]:
    """A registered version, made by the service account through the environment `up` set."""
    client = mlflow.MlflowClient()
    experiment = client.create_experiment("auth-probe")
    run = client.create_run(experiment)
    client.create_registered_model(MODEL)
    created = client.create_model_version(MODEL, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    yield str(created.version)


def viewer(stack: Settings) -> Auth:
    found = credentials.load_server_credentials(stack.keys_dir)
    assert found is not None
    return (credentials.VIEWER_USER, found.viewer_password)


def service(stack: Settings) -> Auth:
    return credentials.mlflow_service_auth(stack.keys_dir)


def mlflow_writes(stack: Settings, version: str, auth: Auth, value: str) -> list[int]:
    """Status codes of a version tag write, a model tag write, an alias move and a new version."""
    api = f"{stack.mlflow_url}/api/2.0/mlflow"
    existing = mlflow.MlflowClient().get_model_version(MODEL, version)
    calls = [
        ("model-versions/set-tag", {"name": MODEL, "version": version, "key": "govdeploy.x", "value": value}),
        ("registered-models/set-tag", {"name": MODEL, "key": "govdeploy.x", "value": value}),
        ("registered-models/alias", {"name": MODEL, "alias": "champion", "version": version}),
        ("model-versions/create", {"name": MODEL, "source": existing.source, "run_id": existing.run_id}),
    ]
    return [httpx.post(f"{api}/{path}", json=body, auth=auth, timeout=10).status_code for path, body in calls]


def test_anonymous_mlflow_tag_writes_and_alias_moves_get_401(stack: Settings, version: str) -> None:
    assert mlflow_writes(stack, version, None, "anonymous") == [401] * 4
    response = httpx.get(f"{stack.mlflow_url}/api/2.0/mlflow/registered-models/get", params={"name": MODEL})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")  # the browser asks for a login


def test_the_viewer_reads_but_its_tag_writes_and_alias_moves_get_403(stack: Settings, version: str) -> None:
    read = httpx.get(
        f"{stack.mlflow_url}/api/2.0/mlflow/registered-models/get", params={"name": MODEL}, auth=viewer(stack)
    )
    assert read.status_code == 200
    assert mlflow_writes(stack, version, viewer(stack), "viewer") == [403] * 4
    tags = mlflow.MlflowClient().get_model_version(MODEL, version).tags
    assert tags.get("govdeploy.x") != "viewer"


def test_the_service_account_writes(stack: Settings, version: str) -> None:
    assert mlflow_writes(stack, version, service(stack), "service") == [200] * 4
    client = mlflow.MlflowClient()  # MLFLOW_TRACKING_USERNAME/PASSWORD from client_env
    assert client.get_model_version(MODEL, version).tags["govdeploy.x"] == "service"
    assert client.get_model_version_by_alias(MODEL, "champion").version == version
    wrong = (credentials.SERVICE_USER, "not-the-password-of-the-account")
    assert mlflow_writes(stack, version, wrong, "wrong") == [401] * 4


@pytest.fixture(scope="module")
def flow_run(stack: Settings) -> str:
    """A flow run (never started, so not paused), created with the credential."""
    api, auth = stack.prefect_api_url, credentials.prefect_auth(stack.keys_dir)
    flow = httpx.post(f"{api}/flows/", json={"name": "auth-probe"}, auth=auth, timeout=10).json()
    run = httpx.post(f"{api}/flow_runs/", json={"flow_id": flow["id"]}, auth=auth, timeout=10).json()
    return str(run["id"])


def prefect_calls(stack: Settings, run_id: str, auth: Auth) -> list[int]:
    """Status codes of a run search, a resume and an event."""
    api = stack.prefect_api_url
    event = {
        "id": str(uuid.uuid4()),
        "occurred": "2026-01-01T00:00:00Z",
        "event": "govdeploy.drift.detected",
        "resource": {"prefect.resource.id": "govdeploy.model.auth-probe"},
    }
    return [
        httpx.post(f"{api}/flow_runs/filter", json={}, auth=auth, timeout=10).status_code,
        httpx.post(f"{api}/flow_runs/{run_id}/resume", json={}, auth=auth, timeout=10).status_code,
        httpx.post(f"{api}/events", json=[event], auth=auth, timeout=10).status_code,
    ]


def test_anonymous_prefect_searches_resumes_and_events_get_401(stack: Settings, flow_run: str) -> None:
    assert prefect_calls(stack, flow_run, None) == [401, 401, 401]
    assert prefect_calls(stack, flow_run, ("govdeploy", "not-the-auth-string")) == [401, 401, 401]
    assert httpx.get(f"{stack.prefect_api_url}/health", timeout=10).status_code == 200  # probes stay open


def test_prefect_answers_the_credential(stack: Settings, flow_run: str) -> None:
    auth = credentials.prefect_auth(stack.keys_dir)
    assert prefect_calls(stack, flow_run, auth) == [200, 200, 204]
    resume = httpx.post(
        f"{stack.prefect_api_url}/flow_runs/{flow_run}/resume", json={}, auth=auth, timeout=10
    )
    assert resume.json()["details"]["reason"] == "Cannot resume a flow run that is not paused."
    with pytest.raises(GovdeployError, match="does not exist"):  # Prefect's client, in-process
        flow_runs.read_run(str(uuid.uuid4()))


def test_up_status_and_the_logs_name_no_secret(stack: Settings) -> None:
    messages: list[str] = []
    again = manager.up(stack, messages.append)
    actions = {c.name: c.action for c in again.components}
    assert [actions[name] for name in ("s3", "mlflow", "prefect")] == ["already running"] * 3
    assert not any("credentials" in action for action in actions.values())  # (code edits may restart ours)
    assert again.all_running
    assert str(credentials.servers_dir(stack.keys_dir) / credentials.VIEWER_PASSWORD) in messages[-1]
    found = credentials.load_server_credentials(stack.keys_dir)
    assert found is not None
    logs = "".join(log.read_text(errors="replace") for log in (stack.state_dir / "logs").glob("*.log"))
    text = "\n".join(messages) + manager.status(stack).model_dump_json() + logs
    for secret in (
        found.service_password,
        found.viewer_password,
        found.flask_secret,
        found.prefect_auth_string.partition(":")[2],
    ):
        assert secret not in text
