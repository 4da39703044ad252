"""The moderation process: report subscription, ban buckets, admin API, retention loops."""

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog
from aiohttp import web
from nats.aio.client import Client
from nats.js.kv import KeyValue
from prometheus_client import CollectorRegistry

from services.moderation.admin import AdminApi
from services.moderation.decisions import BanRules, SlidingWindowLimit
from services.moderation.keeper import BanKeeper, Stores
from services.moderation.metrics import ModerationMetrics
from services.moderation.reports import ReportHandler
from services.moderation.retention import Retention
from services.moderation.settings import ModerationSettings
from services.moderation.stores import BlockStore, StrikeStore, TallyStore
from shared import subjects
from shared.bans import (
    BAN_STRIKES_BUCKET,
    REPORT_BLOCKS_BUCKET,
    REPORT_COUNTS_BUCKET,
    BanStore,
    bans_bucket_config,
    open_bucket,
    report_blocks_bucket_config,
    report_counts_bucket_config,
    strikes_bucket_config,
)
from shared.bus import connect_nats, subscribe_event
from shared.events import ModerationReport
from shared.ops import add_ops_routes, start_site
from shared.subjects import BANS_BUCKET
from shared.tasks import cancel_tasks

# REPORTS_PER_HOUR limits each reporter's reports within this sliding window of one hour.
RATE_WINDOW_S = 3600.0

# Seconds between sweeps of the rate limiter's memory of reporters.
LIMITER_PRUNE_INTERVAL_S = 60.0


# Moderation replicas share reports through this queue group, so each report counts once.
REPORT_QUEUE = "moderation"

log = structlog.get_logger("moderation")


class Moderation:
    """One moderation process."""

    def __init__(self, settings: ModerationSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._clock = clock
        self.metrics = ModerationMetrics(CollectorRegistry())
        self.limiter = SlidingWindowLimit(settings.reports_per_hour, RATE_WINDOW_S)
        self.buckets: dict[str, KeyValue] = {}
        self.keeper: BanKeeper | None = None
        self.reports: ReportHandler | None = None
        self.retention: Retention | None = None
        self.http_port = 0
        self.admin_port = 0
        self._nats: Client | None = None
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        settings = self.settings
        log.info("moderation_starting", nats_url=settings.common.nats_url)
        self._nats = await connect_nats(settings.common.nats_url, "moderation", settings.common.nats_connect_timeout_s)
        await self._open_buckets()
        self._build()
        await self._subscribe()
        await self._serve_ops()
        await self._serve_admin()

        assert self.retention is not None
        self._tasks = [
            asyncio.create_task(self.retention.run_bans(settings.ban_purge_interval_s), name="ban_purge"),
            asyncio.create_task(self.retention.run_logs(settings.log_purge_interval_s), name="log_purge"),
            asyncio.create_task(self._prune_limiter(), name="limiter_prune"),
        ]
        log.info("moderation_started", http_port=self.http_port, admin_port=self.admin_port or None)

    async def close(self) -> None:
        log.info("moderation_stopping")
        await cancel_tasks(self._tasks)
        for runner in reversed(self._runners):
            await runner.cleanup()
        if self._nats is not None:
            with contextlib.suppress(Exception):
                await self._nats.drain()
        log.info("moderation_closed")

    async def _open_buckets(self) -> None:
        assert self._nats is not None
        js = self._nats.jetstream(timeout=self.settings.kv_timeout_s)
        policy = self.settings.policy
        configs = (
            bans_bucket_config(),
            strikes_bucket_config(policy),
            report_counts_bucket_config(policy),
            report_blocks_bucket_config(policy),
        )
        for config in configs:
            self.buckets[config.bucket] = await open_bucket(js, config)

    def _build(self) -> None:
        assert self._nats is not None
        settings = self.settings
        buckets = self.buckets
        bans_store = BanStore(buckets[BANS_BUCKET], self._clock)
        stores = Stores(
            bans_store,
            StrikeStore(buckets[BAN_STRIKES_BUCKET]),
            TallyStore(buckets[REPORT_COUNTS_BUCKET]),
            BlockStore(buckets[REPORT_BLOCKS_BUCKET]),
        )
        self.keeper = BanKeeper(stores, settings.policy.report_window_s, self.limiter, self._clock)
        rules = BanRules.from_policy(settings.policy)
        self.reports = ReportHandler(
            self.keeper, rules, self.limiter, settings.policy.report_block_s, self.metrics, self._clock
        )
        self.retention = Retention(
            bans_store,
            self._nats.jetstream(timeout=settings.kv_timeout_s),
            self.buckets,
            settings.common.log_dir,
            settings.policy.log_retention_s,
            settings.marker_grace_s,
            self.metrics,
            self._clock,
        )

    async def _subscribe(self) -> None:
        assert self._nats is not None and self.reports is not None
        reports = self.reports

        async def on_report(report: ModerationReport) -> None:
            await reports.handle(report)

        await subscribe_event(
            self._nats, subjects.MODERATION_REPORT, ModerationReport, on_report, self.metrics.rejected, REPORT_QUEUE
        )

    async def _serve_ops(self) -> None:
        app = web.Application()
        add_ops_routes(app, self.metrics.registry, lambda: self._nats is not None and self._nats.is_connected)
        runner, self.http_port = await start_site(app, self.settings.http_host, self.settings.http_port)
        self._runners.append(runner)

    async def _serve_admin(self) -> None:
        settings = self.settings
        if settings.admin_token is None:
            log.warning("admin_api_disabled", reason="ADMIN_TOKEN is not set")
            return
        assert self.keeper is not None
        secrets: tuple[bytes, ...] = (settings.common.ip_key_secret,)
        if settings.previous_ip_key_secret is not None:
            secrets += (settings.previous_ip_key_secret,)
        api = AdminApi(settings.admin_token, secrets, self.keeper, self.metrics, self._clock)
        runner, self.admin_port = await start_site(api.application(), settings.admin_host, settings.admin_port)
        self._runners.append(runner)
        log.info("admin_api_started", host=settings.admin_host, port=self.admin_port)

    async def _prune_limiter(self) -> None:
        while True:
            await asyncio.sleep(LIMITER_PRUNE_INTERVAL_S)
            self.limiter.prune(self._clock())
