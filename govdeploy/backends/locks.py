"""One change of a model's serving state at a time, across processes and machines.

A Prefect global concurrency limit of one slot per model (``govdeploy-change-<model>``), created on
first use. The slot is held under a lease the holder keeps renewing: a process that dies frees it
when the lease runs out, so a crash never leaves a model locked.

This serialises govdeploy's own automation (a release promoting while a rollback runs); it is not a
control against someone who can write to the Prefect API: records are ordered by their signed
sequence, and two records of one sequence are refused by every gateway.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.exceptions import PrefectException

from govdeploy.errors import RolloutError

LEASE_SECONDS = 60.0


def limit_name(model: str) -> str:
    return f"govdeploy-change-{model}"


@contextmanager
def model_change(model: str, what: str, timeout_seconds: float) -> Iterator[None]:
    """Hold ``model``'s change slot while the block runs; RolloutError when another change holds it
    longer than ``timeout_seconds`` or the Prefect API cannot give it."""
    name = limit_name(model)
    try:
        with get_client(sync_client=True) as client:
            client.upsert_global_concurrency_limit_by_name(name, limit=1)
    except (PrefectException, httpx.HTTPError, OSError) as exc:
        raise RolloutError(f"{what} of {model}: the change lock {name!r} could not be set up: {exc}") from exc
    with ExitStack() as held:
        try:
            held.enter_context(
                concurrency(
                    name,
                    occupy=1,
                    timeout_seconds=timeout_seconds,
                    strict=True,
                    lease_duration=LEASE_SECONDS,
                    raise_on_lease_renewal_failure=False,
                )
            )
        except TimeoutError:
            raise RolloutError(
                f"{what} of {model} did not start: another change of {model} (release, canary or "
                f"rollback) held the change lock {name!r} for over {timeout_seconds:.0f} s; try again "
                "when it has ended (see the running flows in the Prefect UI)"
            ) from None
        except PrefectException as exc:
            raise RolloutError(
                f"{what} of {model}: the change lock {name!r} could not be taken: {exc}"
            ) from exc
        yield  # leaving the block releases the slot, also on an error inside it
