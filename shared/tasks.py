"""Stopping background tasks reliably."""

import asyncio
from collections.abc import Iterable

# Seconds between repeated cancellations of a task that has not ended yet.
CANCEL_RETRY_S = 0.2


async def cancel_tasks(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel tasks and wait for them, repeating the cancellation until each one has ended.

    A cancellation can be lost inside a library call: in Python 3.11, `asyncio.wait_for`
    (used by nats-py requests) drops it when the awaited call finishes at the same moment.
    """
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _done, pending = await asyncio.wait(pending, timeout=CANCEL_RETRY_S)
