"""Waiting for a condition in tests: the one allowed use of the clock.

A test never asserts how long something took (a busy machine makes every duration
longer; durations belong in ``benchmarks/``). It waits for the condition it needs, with
a generous deadline that only bounds a hang, and then asserts the condition itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: The default deadline: long enough for two suites on a busy 2-core machine, short
#: enough that a hang fails the test rather than the CI job's timeout.
DEFAULT_TIMEOUT_S = 30.0


def wait_until(
    check: Callable[[], T],
    timeout: float = DEFAULT_TIMEOUT_S,
    what: str = "the condition",
    *,
    interval: float = 0.005,
) -> T:
    """Call ``check`` until it returns something truthy, and return that.

    Fails with ``AssertionError("timed out after N s waiting for <what>")`` when
    ``timeout`` seconds pass first. ``check`` is always called once more after the
    deadline, so a condition that became true during the last sleep still counts.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            result = check()
            if result:
                return result
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
