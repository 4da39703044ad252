"""Retention purges: ban records at their end time, log files after the retention period.

Both steps take `now` from an injectable clock, so tests can move time instead of waiting.
"""

import asyncio
import datetime
import math
import os
import re
import time
from collections.abc import Callable

import nats.errors
import structlog
from nats.js.client import JetStreamContext
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from services.moderation.metrics import ModerationMetrics
from shared.bans import BanStore
from shared.ipkey import short_key

log = structlog.get_logger("retention")

_DAILY_FILE = re.compile(r"-(\d{4}-\d{2}-\d{2})\.log$")


def _day_start_s(file_name: str) -> float:
    """Return the unix time at which a daily log file's UTC day began, or +inf for other names."""
    match = _DAILY_FILE.search(file_name)
    if match is None:
        return math.inf
    try:
        day = datetime.datetime.strptime(match.group(1), "%Y-%m-%d").replace(tzinfo=datetime.UTC)
    except ValueError:
        return math.inf
    return day.timestamp()


class Retention:
    """Deletes ended bans and old log files, and clears the purge markers left behind."""

    def __init__(
        self,
        bans: BanStore,
        js: JetStreamContext,
        buckets: dict[str, KeyValue],
        log_dir: str | None,
        log_retention_s: float,
        marker_grace_s: float,
        metrics: ModerationMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._bans = bans
        self._js = js
        self._buckets = buckets
        self._log_dir = log_dir
        self._log_retention_s = log_retention_s
        self._marker_grace_s = marker_grace_s
        self._metrics = metrics
        self._clock = clock

    async def purge_bans(self) -> int:
        """Delete every ban whose end time has passed; return how many were deleted."""
        now_s = self._clock()
        stored = await self._bans.items()
        purged = 0
        for key, ban in stored.items():
            if ban.record.until > now_s:
                continue
            if await self._bans.delete(key, ban.revision):
                purged += 1
                log.info("ban_purged", ip_key=short_key(key))
        self._metrics.purged_records.inc(purged)
        self._metrics.active_bans.set(len(stored) - purged)
        await self._purge_markers()
        return purged

    async def _purge_markers(self) -> None:
        # A purge marker carries no data but its subject still names the key; remove it once
        # every watcher has had `marker_grace_s` to apply it.
        for name, bucket in self._buckets.items():
            await purge_markers(self._js, name, bucket, self._marker_grace_s)

    def purge_logs(self) -> int:
        """Delete regular files in the log directory whose oldest line may be past the retention period.

        A file's oldest line is as old as its last change, or, for a daily file named
        `<name>-YYYY-MM-DD.log`, as old as the start of that UTC day, whichever is older.
        """
        if not self._log_dir or not os.path.isdir(self._log_dir):
            return 0
        cutoff_s = self._clock() - self._log_retention_s
        deleted = 0
        with os.scandir(self._log_dir) as entries:
            for entry in entries:
                # Symbolic links are skipped: a link must never let the purge delete files elsewhere.
                if not entry.is_file(follow_symlinks=False):
                    continue
                oldest_line_s = min(entry.stat(follow_symlinks=False).st_mtime, _day_start_s(entry.name))
                if oldest_line_s >= cutoff_s:
                    continue
                try:
                    os.remove(entry.path)
                except FileNotFoundError:
                    continue
                deleted += 1
                log.info("log_file_purged", file=entry.name)
        self._metrics.purged_files.inc(deleted)
        return deleted

    async def run_bans(self, interval_s: float) -> None:
        """Purge ended bans every `interval_s` until cancelled; a failed pass is logged and retried."""
        while True:
            try:
                await self.purge_bans()
            except (nats.errors.Error, TimeoutError) as exc:
                self._metrics.purge_failures.labels(kind="bans").inc()
                log.warning("ban_purge_failed", error=str(exc) or type(exc).__name__)
            await asyncio.sleep(interval_s)

    async def run_logs(self, interval_s: float) -> None:
        """Purge old log files every `interval_s` until cancelled."""
        while True:
            try:
                await asyncio.to_thread(self.purge_logs)
            except OSError as exc:
                self._metrics.purge_failures.labels(kind="logs").inc()
                log.warning("log_purge_failed", error=str(exc))
            await asyncio.sleep(interval_s)


async def purge_markers(js: JetStreamContext, bucket_name: str, bucket: KeyValue, older_than_s: float) -> int:
    """Remove delete and purge markers older than `older_than_s` from a bucket's stream.

    nats-py's `KeyValue.purge_deletes` does the same but never stops its watcher, so a
    periodic call would leak one consumer per pass (nats-py 2.16).
    """
    watcher = await bucket.watchall(headers_only=True)
    markers: list[tuple[str, int, datetime.datetime | None]] = []
    try:
        async for entry in watcher:
            if entry is None:
                break
            if entry.operation in (KV_DEL, KV_PURGE):
                markers.append((entry.key, entry.revision or 0, entry.created))
    finally:
        await watcher.stop()

    now = datetime.datetime.now(datetime.UTC)
    purged = 0
    for key, revision, created in markers:
        if created is not None and (now - created).total_seconds() < older_than_s:
            continue
        # Purging below `revision + 1` removes the marker but never a value written after it.
        await js.purge_stream(f"KV_{bucket_name}", seq=revision + 1, subject=f"$KV.{bucket_name}.{key}")
        purged += 1
    return purged
