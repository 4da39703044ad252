"""The matcher process: NATS subscriptions, the lease loop and the pairing tick."""

import asyncio
import time
from collections.abc import Callable

import structlog
from aiohttp import web
from nats.aio.client import Client
from prometheus_client import CollectorRegistry

from services.matcher.lease import Lease
from services.matcher.metrics import MatcherMetrics
from services.matcher.pairing import Action, Pairing, PairingRules, Proposal, Requeued, Started
from services.matcher.settings import MatcherSettings
from services.matcher.waiters import Waiter
from shared import subjects
from shared.bus import connect_nats, subscribe_event
from shared.codec import encode
from shared.events import CallStart, GatewayHeartbeat, MatchConfirm, Matched, MatchEpoch, MatchJoin, MatchLeave
from shared.ops import add_ops_routes, start_site
from shared.tasks import cancel_tasks

log = structlog.get_logger("matcher")


class Matcher:
    """One matcher process; it pairs people only while it holds the lease."""

    def __init__(self, settings: MatcherSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self.metrics = MatcherMetrics(CollectorRegistry())
        self.pairing: Pairing | None = None
        self.http_port = 0
        self._nats: Client | None = None
        self._lease: Lease | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self._reported_drops = 0
        self.metrics.watch_queue(lambda: dict(self.pairing.index.count_by_country) if self.pairing else {})

    @property
    def is_leader(self) -> bool:
        return self.pairing is not None

    async def start(self) -> None:
        settings = self.settings
        structlog.contextvars.bind_contextvars(matcher_id=settings.matcher_id)
        log.info("matcher_starting", nats_url=settings.common.nats_url)

        self._nats = await connect_nats(
            settings.common.nats_url, settings.matcher_id, settings.common.nats_connect_timeout_s
        )
        self._lease = Lease(self._nats.jetstream(), settings.matcher_id, settings.lease_ttl_s)
        await self._subscribe()

        app = web.Application()
        add_ops_routes(app, self.metrics.registry, lambda: self._nats is not None and self._nats.is_connected)
        self._runner, self.http_port = await start_site(app, settings.http_host, settings.http_port)

        self._tasks = [
            asyncio.create_task(self._lease_loop(), name="lease"),
            asyncio.create_task(self._tick_loop(), name="tick"),
            asyncio.create_task(self._announce_loop(), name="announce"),
        ]
        log.info("matcher_started", http_port=self.http_port)

    async def close(self) -> None:
        log.info("matcher_stopping")
        await cancel_tasks(self._tasks)
        if self.pairing is not None and self._lease is not None:
            await self._lease.release()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._nats is not None:
            await self._nats.drain()
        log.info("matcher_closed")

    # -- subscriptions ----------------------------------------------------------------------

    async def _subscribe(self) -> None:
        assert self._nats is not None
        rejected = self.metrics.rejected
        await subscribe_event(self._nats, subjects.MATCH_JOIN, MatchJoin, self._on_join, rejected)
        await subscribe_event(self._nats, subjects.MATCH_LEAVE, MatchLeave, self._on_leave, rejected)
        await subscribe_event(self._nats, subjects.MATCH_CONFIRM, MatchConfirm, self._on_confirm, rejected)
        await subscribe_event(self._nats, subjects.GATEWAY_HEARTBEAT, GatewayHeartbeat, self._on_heartbeat, rejected)

    async def _on_join(self, event: MatchJoin) -> None:
        if self.pairing is None:
            return
        waiter = Waiter(
            session_id=event.session_id,
            gateway_id=event.gateway_id,
            boot_id=event.boot_id,
            browser_id=event.browser_id,
            country=event.country,
            wanted=event.wanted,
            ip_key=event.ip_key,
            order=(event.waiting_since_us, 0),
            joined_at_s=0.0,
            widen=event.widen,
            recent_sessions=frozenset(event.recent_sessions),
            recent_browsers=frozenset(event.recent_browsers),
            blocked_keys=frozenset(event.blocked_keys),
        )
        await self._publish_actions(self.pairing.join(waiter))

    async def _on_leave(self, event: MatchLeave) -> None:
        if self.pairing is not None:
            self.pairing.leave(event.session_id)

    async def _on_confirm(self, event: MatchConfirm) -> None:
        if self.pairing is None or self._lease is None or event.epoch != self._lease.epoch:
            return
        await self._publish_actions(self.pairing.confirm(event.call_id, event.session_id))

    async def _on_heartbeat(self, event: GatewayHeartbeat) -> None:
        if self.pairing is not None:
            self.pairing.heartbeat(event.gateway_id, event.boot_id, event.draining)

    # -- publishing ---------------------------------------------------------------------------

    async def _publish_actions(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Proposal):
                self.metrics.proposals.inc()
                await self._publish_proposal(action)
            elif isinstance(action, Started):
                self.metrics.matches.inc()
                await self._publish_start(action.proposal)
            elif isinstance(action, Requeued):
                self.metrics.requeues.inc()
                log.info("proposal_requeued", call_id=action.proposal.call_id)

    async def _publish_proposal(self, proposal: Proposal) -> None:
        assert self._nats is not None and self._lease is not None
        for side, other in ((proposal.first, proposal.second), (proposal.second, proposal.first)):
            matched = Matched(
                call_id=proposal.call_id,
                epoch=self._lease.epoch,
                session_id=side.session_id,
                partner_session=other.session_id,
                partner_gateway=other.gateway_id,
                partner_key=other.ip_key,
                partner_browser=other.browser_id,
                partner_country=other.country,
                role=proposal.role_of(side.session_id),
            )
            await self._nats.publish(subjects.gateway_subject(side.gateway_id, subjects.GW_MATCHED), encode(matched))

    async def _publish_start(self, proposal: Proposal) -> None:
        assert self._nats is not None and self._lease is not None
        now = self._clock()
        for side in (proposal.first, proposal.second):
            self.metrics.wait_seconds.observe(max(0.0, now - side.joined_at_s))
            start = CallStart(call_id=proposal.call_id, epoch=self._lease.epoch, session_id=side.session_id)
            await self._nats.publish(subjects.gateway_subject(side.gateway_id, subjects.GW_START), encode(start))

    # -- loops --------------------------------------------------------------------------------

    def _rules(self) -> PairingRules:
        settings = self.settings
        return PairingRules(
            confirm_timeout_s=settings.confirm_timeout_s,
            heartbeat_interval_s=settings.heartbeat_interval_s,
            missed_heartbeats=settings.missed_heartbeats,
            widen_after_s=settings.widen_after_s,
            recent_override_after_s=settings.recent_override_after_s,
        )

    async def _lease_loop(self) -> None:
        assert self._lease is not None
        renew_every_s = self.settings.lease_ttl_s / 3
        last_renewal_s = 0.0
        while True:
            try:
                if self.pairing is None:
                    if await self._lease.try_acquire():
                        last_renewal_s = self._clock()
                        await self._become_leader()
                elif await self._lease.renew():
                    last_renewal_s = self._clock()
                else:
                    self._step_down("lease_taken")
            except Exception as exc:
                log.warning("lease_call_failed", error=str(exc) or type(exc).__name__)
                # Without a renewal for a whole TTL another matcher may lead; stop pairing.
                if self.pairing is not None and self._clock() - last_renewal_s > self.settings.lease_ttl_s:
                    self._step_down("lease_unconfirmed")
            await asyncio.sleep(renew_every_s)

    async def _become_leader(self) -> None:
        assert self._lease is not None and self._nats is not None
        self.pairing = Pairing(self._rules(), self._clock)
        self._reported_drops = 0
        self.metrics.lease_changes.inc()
        self.metrics.is_leader.set(1)
        self.metrics.epoch.set(self._lease.epoch)
        log.info("leader_elected", epoch=self._lease.epoch)
        await self._announce_epoch()

    def _step_down(self, reason: str) -> None:
        log.warning("leader_stepped_down", reason=reason)
        self.pairing = None
        self.metrics.lease_changes.inc()
        self.metrics.is_leader.set(0)

    async def _announce_epoch(self) -> None:
        assert self._lease is not None and self._nats is not None
        event = MatchEpoch(epoch=self._lease.epoch, leader_id=self.settings.matcher_id)
        await self._nats.publish(subjects.MATCH_EPOCH, encode(event))

    async def _announce_loop(self) -> None:
        # Repeated announcements reach gateways that started, or reconnected, after the election.
        while True:
            await asyncio.sleep(self.settings.epoch_announce_interval_s)
            if self.pairing is None:
                continue
            try:
                await self._announce_epoch()
            except Exception as exc:
                log.warning("epoch_announce_failed", error=str(exc) or type(exc).__name__)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_interval_s)
            if self.pairing is None:
                continue
            try:
                await self._publish_actions(self.pairing.tick())
            except Exception:
                log.exception("tick_failed")
            self._count_dropped_entries()

    def _count_dropped_entries(self) -> None:
        if self.pairing is None:
            return
        delta = self.pairing.dropped_entries - self._reported_drops
        if delta > 0:
            self.metrics.gateways_dropped.inc(delta)
            log.info("gateway_entries_dropped", count=delta)
        self._reported_drops = self.pairing.dropped_entries
