"""The gateway's live copy of the `bans` KV bucket, so connect and join check bans without NATS.

A watcher applies every put, delete and purge as it arrives; `on_ban` lets the gateway end live
sessions of a newly banned key. Ended bans drop out by time even before moderation purges them.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable

import nats.errors
import structlog
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from shared.bans import decode_ban
from shared.errors import DecodeError
from shared.ipkey import short_key
from shared.tasks import cancel_tasks

# Seconds between attempts to restart a watcher that failed, e.g. while NATS restarts.
# Repeated failures double the wait up to the maximum, so a lost bucket does not flood the log.
RESTART_WAIT_S = 0.5
MAX_RESTART_WAIT_S = 8.0

# Seconds between checks whether the NATS client reconnected while the watcher was idle.
RECONNECT_CHECK_S = 0.5


log = structlog.get_logger("ban_cache")

BanCallback = Callable[[str, float], Awaitable[None]]


class BanCache:
    """ip_key -> end of ban, kept current by a KV watcher that `start()` runs until `close()`."""

    def __init__(
        self,
        bucket: KeyValue,
        on_ban: BanCallback | None = None,
        clock: Callable[[], float] = time.time,
        reconnects: Callable[[], int] | None = None,
    ) -> None:
        """`reconnects` returns the NATS client's reconnect count, e.g. `lambda: nc.stats["reconnects"]`."""
        self._bucket = bucket
        self._clock = clock
        self._reconnects = reconnects
        self.on_ban = on_ban
        self.until_by_key: dict[str, float] = {}
        # Set once the watcher has delivered every ban that existed when it started.
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout_s: float) -> None:
        """Start watching and wait until the existing bans are loaded; raise TimeoutError after `timeout_s`."""
        self._task = asyncio.create_task(self.run(), name="ban_cache")
        await asyncio.wait_for(self.ready.wait(), timeout_s)

    async def close(self) -> None:
        """Stop watching; the cancellation repeats because nats-py calls can swallow one (Python 3.11)."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_tasks([task])

    def banned_until(self, ip_key: str, now_s: float, previous_key: str | None = None) -> float | None:
        """Return the end of the ban on `ip_key` (or on the key from the previous secret), or None."""
        longest: float | None = None
        for key in (ip_key, previous_key):
            if key is None:
                continue
            until = self.until_by_key.get(key)
            if until is None:
                continue
            if until <= now_s:
                del self.until_by_key[key]
                continue
            longest = until if longest is None else max(longest, until)
        return longest

    def __len__(self) -> int:
        return len(self.until_by_key)

    async def run(self) -> None:
        """Watch the bucket until cancelled, restarting the watcher after a failure."""
        wait_s = RESTART_WAIT_S
        while True:
            try:
                await self._watch()
                wait_s = RESTART_WAIT_S
            except (nats.errors.Error, TimeoutError, OSError) as exc:
                log.warning("ban_watch_failed", error=str(exc) or type(exc).__name__, retry_in_s=wait_s)
                wait_s = min(wait_s * 2, MAX_RESTART_WAIT_S)
            await asyncio.sleep(wait_s)

    async def _watch(self) -> None:
        watcher = await self._bucket.watchall()
        reconnects = self._reconnect_count()
        # The watcher replays the current value of every key, then follows changes. Keys
        # that vanished while no watcher ran must go too, so the replay builds a fresh map.
        loaded: dict[str, float] | None = {}
        try:
            while True:
                try:
                    entry = await watcher.updates(timeout=RECONNECT_CHECK_S)
                except nats.errors.TimeoutError:
                    if self._reconnect_count() != reconnects:
                        # nats-py's ordered consumer notices a restarted broker only after missed
                        # heartbeats (about 15 s); a fresh watcher resumes within a second.
                        log.info("ban_watch_restarting", reason="nats_reconnected")
                        return
                    continue
                if entry is None:
                    if loaded is not None:
                        await self._finish_replay(loaded)
                        loaded = None
                    continue
                target = loaded if loaded is not None else self.until_by_key
                await self._apply(target, entry.key, entry.operation, entry.value, notify=loaded is None)
        finally:
            await watcher.stop()

    def _reconnect_count(self) -> int:
        return self._reconnects() if self._reconnects is not None else 0

    async def _finish_replay(self, loaded: dict[str, float]) -> None:
        # Bans created while a restarted watcher was down reach `on_ban` here; the first
        # replay after start only fills the map, since no session exists yet.
        previous = self.until_by_key
        self.until_by_key = loaded
        log.info("ban_cache_loaded", bans=len(loaded))
        if self.ready.is_set():
            for key, until in loaded.items():
                if previous.get(key) != until:
                    await self._notify(key, until)
        self.ready.set()

    async def _apply(
        self, target: dict[str, float], key: str, operation: str | None, value: bytes | None, notify: bool
    ) -> None:
        if operation in (KV_DEL, KV_PURGE):
            if target.pop(key, None) is not None:
                log.info("ban_removed", ip_key=short_key(key))
            return
        if not value:
            return

        try:
            record = decode_ban(value)
        except DecodeError as exc:
            log.warning("ban_record_rejected", ip_key=short_key(key), error=str(exc))
            return
        target[key] = record.until
        if notify:
            await self._notify(key, record.until)

    async def _notify(self, key: str, until: float) -> None:
        if until <= self._clock():
            return
        log.info("ban_received", ip_key=short_key(key), until=until)
        if self.on_ban is None:
            return
        try:
            await self.on_ban(key, until)
        except Exception:
            log.exception("ban_callback_failed", ip_key=short_key(key))
