"""The approver's view in the Prefect UI, driven in headless Chromium (Debian's ``chromium``): the
paused release's form offers a decision, a reason and a token beside the time left, what approval
starts, links to MLflow and the version serving; a mistyped token is refused while the form is open,
a refused token is on the run page at once and on top of the form when it comes back."""

from __future__ import annotations

import base64
import contextvars
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from govdeploy.backends import flow_runs
from govdeploy.config.settings import Settings
from govdeploy.release.approver import approval_token
from govdeploy.serving import rollout
from tests.flows.conftest import MODEL, reject, start_release, train_as, wait_for_state

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 45_000


def off_loop(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a Prefect client call on a thread of its own: Playwright's sync API keeps an event loop
    running on this one, and Prefect's sync functions would return coroutines there. The thread
    gets this context, so Prefect's settings (the stack's API) come along."""
    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(context.run, call, *args, **kwargs).result()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (no browser download); a fresh profile."""
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        pytest.fail(f"{CHROMIUM} is missing: run `make test`, which installs Debian's chromium package")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: run `make test` (it installs requirements/dev-lock.txt)")
    expect.set_options(timeout=WAIT_MS)
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1100},
        )
        yield context
        context.close()


@pytest.fixture(scope="module")
def paused(stack: Settings) -> dict[str, Any]:
    """A release of a candidate trained by dana, asking for a canary, paused for approvals."""
    candidate = train_as("dana", model=MODEL, rows=3000, seed=41)
    champion = rollout.serving_champion(stack, MODEL)
    run_id = start_release(candidate["version"], canary=True)
    wait_for_state(run_id, "Paused")
    return {**candidate, "run_id": run_id, "champion": champion}


def _page(browser: Any, stack: Settings, run_id: str) -> Any:
    """The run's page, logged in with the stack's Prefect credential as the UI's login form stores it."""
    secret = base64.b64encode(os.environ["PREFECT_API_AUTH_STRING"].encode()).decode()
    page = browser.new_page()
    page.set_default_timeout(WAIT_MS)
    page.add_init_script(f"window.localStorage.setItem('prefect-password', '{secret}')")
    page.goto(f"{stack.prefect_ui_url}/runs/flow-run/{run_id}")
    return page


def _open_form(page: Any) -> Any:
    from playwright.sync_api import expect

    resume = page.get_by_role("button", name="Resume")
    expect(resume).to_be_visible()
    resume.click()
    form = page.locator(".p-modal__card")
    expect(form.get_by_text("Approve release of")).to_be_visible()
    return form


def _submit(form: Any, token: str) -> None:
    form.locator("textarea").last.fill(token)
    form.get_by_role("button", name="Submit").click()


def _token(stack: Settings, run_id: str, approver: str, decision: str = "approve", reason: str = "ok") -> str:
    key = stack.keys_dir / "approvers" / f"{approver}.key"
    return str(off_loop(approval_token, stack, run_id, approver, key, decision, reason))


def test_the_form_shows_what_an_approver_decides_on(
    stack: Settings, paused: dict[str, Any], browser: Any
) -> None:
    from playwright.sync_api import expect

    version, run_id = paused["version"], paused["run_id"]
    page = _page(browser, stack, run_id)
    form = _open_form(page)
    for label in ("Decision", "Reason", "Token"):
        expect(form.get_by_text(label, exact=False).first).to_be_visible()
    expect(form.get_by_text("approve", exact=True).first).to_be_visible()  # the decision's select
    expect(form.get_by_text("time left:")).to_be_visible()
    text = form.inner_text()
    if paused["champion"] in (None, version):
        assert "becomes champion directly" in text
    else:
        assert "a canary on live traffic" in text and "5%, 25%, 50%, 100% of live traffic" in text
        assert f"champion v{paused['champion']}" in text
    mlflow = stack.mlflow_url
    expect(form.locator(f'a[href="{mlflow}/#/models/{MODEL}/versions/{version}"]')).to_be_visible()
    expect(form.locator(f'a[href^="{mlflow}/#/experiments/"]', has_text="gate run")).to_be_visible()
    assert "serving now:" in text
    assert "| " not in text and "\\>" not in text  # tables and escapes rendered, not shown raw
    page.close()


def test_a_mistyped_token_is_refused_while_the_form_is_open(
    stack: Settings, paused: dict[str, Any], browser: Any
) -> None:
    from playwright.sync_api import expect

    page = _page(browser, stack, paused["run_id"])
    form = _open_form(page)
    _submit(form, "not a token!")
    expect(page.get_by_text("Validation failed for field 'token'").first).to_be_visible()
    expect(form.get_by_role("button", name="Submit")).to_be_visible()  # the form stays open
    assert off_loop(flow_runs.wait_until_paused, paused["run_id"], 5).state.is_paused()  # never resumed
    page.close()


def test_a_refused_token_shows_at_once_and_on_top_of_the_form(
    stack: Settings, paused: dict[str, Any], browser: Any
) -> None:
    from playwright.sync_api import expect

    run_id, version = paused["run_id"], paused["version"]
    page = _page(browser, stack, run_id)
    form = _open_form(page)
    _submit(form, _token(stack, run_id, "dana"))  # well formed, but dana trained this version
    refusal = f"dana submitted {MODEL} v{version} and cannot approve it"
    expect(page.get_by_text(f"approval attempt refused: {refusal}").first).to_be_visible()  # the run's log
    form = _open_form(page)  # the run paused again with the refusal on top
    expect(form.locator("blockquote").first).to_contain_text(f"Last attempt refused: {refusal}")

    # a token signed to reject, sent with the form's default decision: refused, the signed one counts
    _submit(form, _token(stack, run_id, "bob", "reject", "fairness evidence incomplete"))
    mismatch = "the form says 'approve' but the token of bob is signed 'reject'"
    expect(page.get_by_text(f"approval attempt refused: {mismatch}").first).to_be_visible()
    page.close()

    # the CLI's bare token still works: bob rejects, the run ends, nothing was promoted
    off_loop(flow_runs.wait_until_paused, run_id, 60)
    outcome = off_loop(reject, stack, run_id, "bob", "fairness evidence incomplete")
    assert outcome is not None and outcome.action == "approval.rejected", outcome
    final = off_loop(wait_for_state, run_id, "Failed")
    assert "rejected by bob: fairness evidence incomplete" in (final.message or "")
    assert rollout.serving_champion(stack, MODEL) == paused["champion"]
