"""Ban bookkeeping shared by reports and the admin API: impose, look up and erase."""

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from services.moderation.decisions import SlidingWindowLimit, merge_bans, recent_entries
from services.moderation.stores import BlockStore, StrikeStore, TallyStore, reporter_tag
from shared.bans import BanRecord, BanStore
from shared.ipkey import short_key

log = structlog.get_logger("ban_keeper")


@dataclass(frozen=True, slots=True)
class Lookup:
    """Records moderation keeps about one key: its ban, earlier bans, counted reports and blocks."""

    ban: BanRecord | None
    bans_recorded: int
    reports_in_window: int
    blocks: int


@dataclass(frozen=True, slots=True)
class Stores:
    """The four moderation buckets, typed."""

    bans: BanStore
    strikes: StrikeStore
    tallies: TallyStore
    blocks: BlockStore


class BanKeeper:
    """Writes bans with their strike count, and erases everything held about a key."""

    def __init__(
        self, stores: Stores, report_window_s: float, limiter: SlidingWindowLimit,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.stores = stores
        self._report_window_s = report_window_s
        self._limiter = limiter
        self._clock = clock

    async def active_ban(self, ip_key: str, now_s: float) -> BanRecord | None:
        record = await self.stores.bans.get(ip_key)
        return record if record is not None and record.until > now_s else None

    async def impose(self, ip_key: str, record: BanRecord, replace: bool) -> BanRecord:
        """Store a ban and count a strike; without `replace`, a longer running ban is kept."""
        if not replace:
            record = merge_bans(await self.active_ban(ip_key, record.created_at), record)
        await self.stores.bans.put(ip_key, record)
        await self.stores.strikes.add(ip_key, record.created_at)
        log.info("ban_stored", ip_key=short_key(ip_key), until=record.until, reason=record.reason)
        return record

    async def lookup(self, ip_keys: tuple[str, ...]) -> Lookup:
        """Summarize what is held under any of the keys (current and previous secret)."""
        now_s = self._clock()
        bans = [ban for ban in [await self.active_ban(key, now_s) for key in ip_keys] if ban is not None]
        bans_recorded = sum([await self.stores.strikes.count(key) for key in ip_keys])
        reports = sum([len(recent_entries(await self.stores.tallies.get(key), now_s, self._report_window_s))
                       for key in ip_keys])
        blocks = sum([len(await self.stores.blocks.get(key)) for key in ip_keys])
        ban = max(bans, key=lambda record: record.until) if bans else None
        return Lookup(ban=ban, bans_recorded=bans_recorded, reports_in_window=reports, blocks=blocks)

    async def erase(self, ip_keys: tuple[str, ...]) -> int:
        """Delete every record about the keys: ban, strikes, tallies, blocks; return the records removed.

        Only existing records are purged, so erasing an unknown address writes nothing.
        """
        removed = 0
        for key in ip_keys:
            if await self.stores.bans.get(key) is not None:
                await self.stores.bans.delete(key)
                removed += 1
            if await self.stores.strikes.count(key):
                await self.stores.strikes.delete(key)
                removed += 1
            if await self.stores.tallies.get(key):
                await self.stores.tallies.delete(key)
                removed += 1
            removed += await self.stores.tallies.remove_reporter(reporter_tag(key))
            removed += await self.stores.blocks.remove_everywhere(key)
            self._limiter.forget(key)
        log.info("records_erased", records=removed)
        return removed
