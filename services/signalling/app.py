"""The gateway process: Socket.IO on aiohttp, NATS subscriptions, heartbeats and drain."""

import asyncio
import contextlib
from collections.abc import Callable

import socketio
import structlog
from aiohttp import web
from nats.aio.client import Client
from prometheus_client import CollectorRegistry

from services.signalling.bans import BanCache
from services.signalling.browser_events import BanLookup, BrowserEvents, GameValidator
from services.signalling.core import GatewayCore
from services.signalling.deliveries import Deliveries
from services.signalling.geo import CountryLookup
from services.signalling.metrics import GatewayMetrics
from services.signalling.resume import ResumeStore, snapshot_of
from services.signalling.session import Session, State
from services.signalling.settings import GatewaySettings
from shared import subjects
from shared.bans import open_bans_bucket, open_report_blocks_bucket
from shared.bus import connect_nats, subscribe_event
from shared.events import GatewayHeartbeat, MatchEpoch
from shared.ipkey import short_key
from shared.ops import add_ops_routes, start_site
from shared.tasks import cancel_tasks
from shared.turn import ice_servers_for as turn_ice_servers
from shared.turn import issue_credentials

log = structlog.get_logger("gateway")

# Engine.IO closes a connection whose single message exceeds this. It sits well above the
# per-event limits, so an oversized signal gets a clear `error` event instead of a disconnect.
MAX_MESSAGE_BYTES = 256 * 1024


class Gateway:
    """One gateway process: owns its browsers' sockets and their session state."""

    def __init__(
        self,
        settings: GatewaySettings,
        bans: BanLookup | None = None,
        validate_game: GameValidator | None = None,
        countries: CountryLookup | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = GatewayMetrics(CollectorRegistry())
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp",
            cors_allowed_origins=list(settings.allowed_origins),
            always_connect=True,
            max_http_buffer_size=MAX_MESSAGE_BYTES,
            logger=False,
            engineio_logger=False,
        )
        self.core = GatewayCore(settings, self.sio, self.metrics)
        self.browser = BrowserEvents(self.core, countries or CountryLookup(), bans, validate_game)
        self.deliveries = Deliveries(self.core, self.ice_servers_for)
        self.port = 0
        self._app = web.Application()
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._last_online = -1
        self.ban_cache: BanCache | None = None

        self.sio.attach(self._app)
        self.browser.register(self.sio)
        add_ops_routes(self._app, self.metrics.registry, self.is_ready)

    def is_ready(self) -> bool:
        nats = self.core.nats
        return not self.core.draining and nats is not None and nats.is_connected

    def ice_servers_for(self, session: Session) -> list[dict[str, object]]:
        """Build the session's ICE servers: the static ones, plus TURN credentials of its own."""
        servers = [dict(server) for server in self.settings.ice_servers]
        turn = self.settings.turn
        if turn.enabled:
            credentials = issue_credentials(turn, self.core.clock_wall)
            session.turn_renew_at_s = credentials.renew_at
            servers += [dict(server) for server in turn_ice_servers(turn, credentials)]
        return servers

    async def _renew_turn_credentials(self, session: Session) -> None:
        """Send fresh TURN credentials to a session in a long call before its old ones expire."""
        renew_at_s = session.turn_renew_at_s
        if session.call is None or renew_at_s is None or self.core.clock_wall() < renew_at_s:
            return
        servers = self.ice_servers_for(session)
        await self.core.emit(session, "ice_servers", {"call_id": session.call.call_id, "ice_servers": servers})

    async def start(self) -> None:
        settings = self.settings
        structlog.contextvars.bind_contextvars(gateway_id=settings.gateway_id)
        log.info("gateway_starting", nats_url=settings.common.nats_url, boot_id=self.core.boot_id)

        nats = await connect_nats(settings.common.nats_url, settings.gateway_id, settings.common.nats_connect_timeout_s)
        self.core.nats = nats
        self.core.resume_store = ResumeStore(nats.jetstream())
        await self.deliveries.subscribe(nats)
        rejected = self.metrics.rejected
        await subscribe_event(nats, subjects.MATCH_EPOCH, MatchEpoch, self.deliveries.on_epoch, rejected)
        await subscribe_event(
            nats, subjects.GATEWAY_HEARTBEAT, GatewayHeartbeat, self.deliveries.on_heartbeat, rejected
        )
        await self._load_moderation_state(nats)
        # Announce this boot before the first join, so the matcher drops a predecessor's entries.
        await self._beat()

        self._runner, self.port = await start_site(self._app, settings.host, settings.port)
        self._tasks = [
            asyncio.create_task(self._every(settings.heartbeat_interval_s, self._heartbeat_tick), name="heartbeat"),
            asyncio.create_task(self._every(settings.online_interval_s, self._broadcast_online), name="online"),
            asyncio.create_task(self._every(settings.rejoin_interval_s, self._rejoin_waiting), name="rejoin"),
        ]
        log.info("gateway_started", port=self.port)

    async def close(self) -> None:
        log.info("gateway_stopping", sessions=len(self.core.by_sid))
        await self.drain()
        await cancel_tasks(self._tasks)
        if self.ban_cache is not None:
            await self.ban_cache.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.core.nats is not None:
            with contextlib.suppress(Exception):
                await self.core.nats.drain()
        log.info("gateway_closed")

    async def drain(self) -> None:
        """Fail readiness, refuse new sockets, ask clients to reconnect elsewhere, wait for them."""
        core = self.core
        if core.draining:
            return
        core.draining = True
        with contextlib.suppress(Exception):
            await self._beat()
        log.info("gateway_draining", sessions=len(core.by_sid))
        for session in list(core.by_sid.values()):
            await self._hand_over(session)
        if core.by_sid:
            core.emptied.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(core.emptied.wait(), self.settings.drain_timeout_s)
        for sid in list(core.by_sid):
            await self.sio.disconnect(sid)

    async def _load_moderation_state(self, nats: Client) -> None:
        """Watch the bans bucket into a local copy and open the reporters' block lists."""
        js = nats.jetstream()
        self.browser.blocks_bucket = await open_report_blocks_bucket(js, self.settings.policy)
        if self.browser.bans is not None:
            return
        self.ban_cache = BanCache(
            await open_bans_bucket(js), on_ban=self._end_banned_sessions, reconnects=lambda: nats.stats["reconnects"]
        )
        await self.ban_cache.start(timeout_s=self.settings.common.nats_connect_timeout_s)
        self.browser.bans = self.ban_cache

    async def _end_banned_sessions(self, ip_key: str, until: float) -> None:
        """End every session of a newly banned key: `banned` to it, `partner_left` to its partner."""
        for session in list(self.core.by_sid.values()):
            if ip_key not in (session.ip_key, session.previous_ip_key):
                continue
            log.info("session_banned", session_id=session.session_id, ip_key=short_key(ip_key))
            await self.core.emit(session, "banned", {"until": until})
            if session.state is State.IN_CALL:
                await self.core.end_call(session, "banned")
            else:
                await self.core.leave_queue(session)
            await self.sio.disconnect(session.sid)

    async def _hand_over(self, session: Session) -> None:
        """Leave the session's snapshot for the next gateway, then ask its client to move."""
        store = self.core.resume_store
        if store is not None:
            try:
                await store.save(snapshot_of(session, self.core.clock()))
                session.moving = True
            except Exception as exc:
                log.warning("snapshot_failed", session_id=session.session_id, error=str(exc) or type(exc).__name__)
        await self.sio.emit("reconnect", {"reason": "draining"}, to=session.sid)

    async def _every(self, interval_s: float, step: Callable[[], object]) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await step()  # type: ignore[misc]  # every step is a coroutine function
            except Exception as exc:
                log.warning(
                    "periodic_step_failed", step=getattr(step, "__name__", "?"), error=str(exc) or type(exc).__name__
                )

    async def _beat(self) -> None:
        waiting, _in_call = self.core.count_states()
        beat = GatewayHeartbeat(
            gateway_id=self.settings.gateway_id,
            boot_id=self.core.boot_id,
            sessions=len(self.core.by_sid),
            waiting=waiting,
            draining=self.core.draining,
        )
        await self.core.publish(subjects.GATEWAY_HEARTBEAT, beat)

    async def _heartbeat_tick(self) -> None:
        await self._beat()
        # One pass over the sessions for every per-session timer.
        for session in list(self.core.by_sid.values()):
            await self.deliveries.expire_pending(session)
            await self.deliveries.end_orphaned_call(session)
            await self._refresh_token(session)
            await self._renew_turn_credentials(session)
        self.browser.prune_report_limiters()

    async def _rejoin_waiting(self) -> None:
        """Re-send every idle waiting entry; the matcher ignores repeats.

        The matcher drops the entries of a gateway it has not heard from for three heartbeats.
        A gateway that was only cut off (a broker restart, a stalled loop) comes back with the
        same boot id, so without this its waiting people would never be paired.
        """
        for session in list(self.core.by_sid.values()):
            if session.state is State.WAITING and session.pending is None:
                await self.core.submit_join(session)

    async def _refresh_token(self, session: Session) -> None:
        """Give the client a new resume token when half of its token's lifetime has passed."""
        core = self.core
        if core.clock() - session.token_issued_at_s >= self.settings.resume_token_ttl_s / 2:
            await core.emit(session, "resume_token", {"token": core.resume_token(session)})

    async def _broadcast_online(self) -> None:
        count = self.core.online_count()
        if count != self._last_online:
            self._last_online = count
            await self.sio.emit("online", {"count": count})
