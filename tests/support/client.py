"""A Socket.IO test client that records every event it receives, for awaiting in tests."""

import asyncio
import secrets
import time
from collections import defaultdict
from typing import Any

import socketio

# Seconds a test waits for one expected event before it fails.
DEFAULT_WAIT_S = 5.0


class Peer:
    """One browser-like client: connects with a browser id and queues received events by name."""

    def __init__(
        self,
        url: str,
        browser_id: str | None = None,
        headers: dict[str, str] | None = None,
        auth: dict[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.browser_id = browser_id or secrets.token_urlsafe(16)
        self.headers = headers or {}
        self.auth = auth if auth is not None else {"browser_id": self.browser_id}
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: dict[str, list[Any]] = defaultdict(list)
        self.counts: dict[str, int] = defaultdict(int)
        self._changed = asyncio.Condition()
        self.hello: dict[str, Any] = {}
        self.resume_token: str | None = None
        self.sio.on("*", self._record)

    async def _record(self, event: str, data: Any = None) -> None:
        async with self._changed:
            self.events[event].append(data)
            self.counts[event] += 1
            if event == "hello" and isinstance(data, dict):
                self.resume_token = data.get("resume_token")
            elif event == "resume_token" and isinstance(data, dict):
                self.resume_token = data.get("token")
            self._changed.notify_all()

    async def connect(self) -> dict[str, Any]:
        await self.sio.connect(self.url, transports=["websocket"], auth=self.auth, headers=self.headers, wait_timeout=5)
        self.hello = await self.next("hello")
        return self.hello

    async def move_to(self, url: str) -> dict[str, Any]:
        """Reconnect to another gateway with the resume token, as the page does on `reconnect`."""
        if self.sio.connected:
            await self.sio.disconnect()
        self.url = url
        self.auth = {"browser_id": self.browser_id, "resume_token": self.resume_token}
        return await self.connect()

    async def next(self, event: str, timeout_s: float = DEFAULT_WAIT_S) -> Any:
        """Wait for and consume the oldest unconsumed `event`."""
        deadline = time.monotonic() + timeout_s
        async with self._changed:
            while not self.events[event]:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {event!r} within {timeout_s} s; got {dict(self.events)!r:.500}")
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    continue
            return self.events[event].pop(0)

    def received(self, event: str) -> list[Any]:
        return list(self.events[event])

    async def emit(self, event: str, data: Any = None) -> None:
        await self.sio.emit(event, data)

    async def join(self, country: str = "any", **extra: Any) -> None:
        await self.emit("join", {"country": country, **extra})
        await self.next("waiting")

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()
