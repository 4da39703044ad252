"""Handling of `moderation.report`: validate, rate-limit, count distinct reporters, ban.

The gateway has already checked that the reported key was the reporter's partner in the named
call. This side checks what one gateway cannot see, such as reports sent through other gateways.
"""

import enum
import time
from collections.abc import Callable

import structlog

from services.moderation.decisions import BanRules, SlidingWindowLimit, TallyEntry, add_report, decide_ban
from services.moderation.keeper import BanKeeper
from services.moderation.metrics import ModerationMetrics
from services.moderation.stores import reporter_tag
from shared.bans import REPORT_REASONS, BanRecord, is_ip_key
from shared.events import ModerationReport
from shared.ipkey import short_key

log = structlog.get_logger("reports")


class Rejection(enum.StrEnum):
    """Reason a report was not counted; the value is the metric label and the log field."""

    INVALID_REASON = "invalid_reason"
    INVALID_KEY = "invalid_key"
    SELF_REPORT = "self_report"
    REPORTER_BANNED = "reporter_banned"
    RATE_LIMITED = "rate_limited"
    DUPLICATE = "duplicate"


class ReportHandler:
    """Turns reports into tallies and tallies into bans."""

    def __init__(
        self,
        keeper: BanKeeper,
        rules: BanRules,
        limiter: SlidingWindowLimit,
        block_s: float,
        metrics: ModerationMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keeper = keeper
        self._rules = rules
        self._limiter = limiter
        self._block_s = block_s
        self._metrics = metrics
        self._clock = clock

    async def handle(self, report: ModerationReport) -> Rejection | BanRecord | None:
        """Process one report; return why it was rejected, the ban it caused, or None when counted."""
        self._metrics.reports_received.inc()
        structlog.contextvars.bind_contextvars(call_id=report.call_id)
        try:
            outcome = await self._process(report, self._clock())
        finally:
            structlog.contextvars.unbind_contextvars("call_id")
        return outcome

    async def _process(self, report: ModerationReport, now_s: float) -> Rejection | BanRecord | None:
        rejection = self._check_shape(report)
        if rejection is None and await self._keeper.active_ban(report.reporter_key, now_s) is not None:
            rejection = Rejection.REPORTER_BANNED
        if rejection is not None:
            return self._reject(report, rejection)

        # The reporter is spared this partner even when its report does not count.
        await self._keeper.stores.blocks.add(report.reporter_key, report.reported_key, now_s + self._block_s, now_s)
        if not self._limiter.allow(report.reporter_key, now_s):
            return self._reject(report, Rejection.RATE_LIMITED)

        counted = await self._count(report, now_s)
        if not counted:
            return self._reject(report, Rejection.DUPLICATE)
        log.info("report_counted", reporter_key=short_key(report.reporter_key),
                 reported_key=short_key(report.reported_key), reason=report.reason)
        return await self._maybe_ban(report.reported_key, now_s)

    def _check_shape(self, report: ModerationReport) -> Rejection | None:
        if report.reason not in REPORT_REASONS:
            return Rejection.INVALID_REASON
        if not is_ip_key(report.reporter_key) or not is_ip_key(report.reported_key):
            return Rejection.INVALID_KEY
        if report.reporter_key == report.reported_key:
            return Rejection.SELF_REPORT
        return None

    def _reject(self, report: ModerationReport, rejection: Rejection) -> Rejection:
        self._metrics.reports_rejected.labels(reason=rejection.value).inc()
        log.info("report_rejected", rejection=rejection.value, reporter_key=short_key(report.reporter_key))
        return rejection

    async def _count(self, report: ModerationReport, now_s: float) -> bool:
        entry = TallyEntry(reporter_tag(report.reporter_key), now_s, report.reason)
        counted = False

        def change(entries: tuple[TallyEntry, ...]) -> tuple[TallyEntry, ...]:
            nonlocal counted
            updated, counted = add_report(entries, entry, self._rules.window_s)
            return updated

        await self._keeper.stores.tallies.update(report.reported_key, change)
        return counted

    async def _maybe_ban(self, reported_key: str, now_s: float) -> BanRecord | None:
        keeper = self._keeper
        if await keeper.active_ban(reported_key, now_s) is not None:
            return None
        entries = await keeper.stores.tallies.get(reported_key)
        previous_bans = await keeper.stores.strikes.count(reported_key)
        record = decide_ban(self._rules, entries, previous_bans, now_s)
        if record is None:
            return None

        stored = await keeper.impose(reported_key, record, replace=False)
        # The reports that led to this ban are spent; the next ban needs new reporters.
        await keeper.stores.tallies.delete(reported_key)
        self._metrics.bans_created.labels(source="reports").inc()
        log.info("ban_created", ip_key=short_key(reported_key), until=stored.until, reason=stored.reason,
                 previous_bans=previous_bans)
        return stored
