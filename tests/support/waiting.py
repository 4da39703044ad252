"""Polling for a condition with a deadline, instead of sleeping a fixed time."""

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

# Seconds between checks of a condition.
POLL_INTERVAL_S = 0.05


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], timeout_s: float = 5.0, what: str = "condition"
) -> None:
    """Return once `condition()` is true; raise TimeoutError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout_s} s")
        await asyncio.sleep(POLL_INTERVAL_S)
