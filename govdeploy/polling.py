"""``poll``: the one wait-until-deadline loop of govdeploy (and its tests and tooling)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(check: Callable[[], T], *, timeout: float, interval: float = 0.5) -> T:
    """Call ``check`` until it returns a truthy value or ``timeout`` seconds have passed.

    ``check`` runs at least once, and once more at the deadline; the last value it returned is the
    result (falsy: the deadline passed). Exceptions from ``check`` propagate at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        left = deadline - time.monotonic()
        if value or left <= 0:
            return value
        time.sleep(min(interval, left))
