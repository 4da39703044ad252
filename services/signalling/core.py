"""Gateway state shared by the browser-event and NATS-delivery handlers."""

import asyncio
import secrets
import time
from collections.abc import Callable

import socketio
import structlog
from nats.aio.client import Client

from services.signalling.metrics import GatewayMetrics
from services.signalling.resume import ResumeStore, issue_token, token_key
from services.signalling.session import Session, State
from services.signalling.settings import GatewaySettings
from shared import subjects
from shared.codec import encode
from shared.events import Ended, Event, MatchJoin, MatchLeave

log = structlog.get_logger("gateway")

# A gateway silent for this many heartbeat intervals counts as gone, as the matcher counts it.
MISSED_HEARTBEATS = 3


class GatewayCore:
    """Sessions by socket and by session id, the current epoch, and publishing helpers."""

    def __init__(
        self,
        settings: GatewaySettings,
        sio: socketio.AsyncServer,
        metrics: GatewayMetrics,
        clock: Callable[[], float] = time.monotonic,
        clock_wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.sio = sio
        self.metrics = metrics
        self.clock = clock
        self.clock_wall = clock_wall
        self.boot_id = secrets.token_hex(6)
        self.nats: Client | None = None
        self.epoch = 0
        self.draining = False
        self.by_sid: dict[str, Session] = {}
        self.by_session: dict[str, Session] = {}
        self.online_by_gateway: dict[str, tuple[int, float]] = {}
        # Last heartbeat of every gateway ever heard, draining ones included, for partner liveness.
        self.gateway_seen: dict[str, float] = {}
        self.emptied = asyncio.Event()
        self.resume_store: ResumeStore | None = None
        self.token_key = token_key(settings.common.ip_key_secret)
        # During a secret rotation, tokens issued before it still resume their sessions.
        previous = settings.previous_ip_key_secret
        self.token_keys = (self.token_key,) + ((token_key(previous),) if previous else ())

    # -- registry ------------------------------------------------------------------------

    def add(self, session: Session) -> None:
        self.by_sid[session.sid] = session
        self.by_session[session.session_id] = session
        self.metrics.sessions.set(len(self.by_sid))

    def remove(self, sid: str) -> Session | None:
        session = self.by_sid.pop(sid, None)
        if session is not None:
            self.by_session.pop(session.session_id, None)
        self.metrics.sessions.set(len(self.by_sid))
        if not self.by_sid:
            self.emptied.set()
        return session

    def count_states(self) -> tuple[int, int]:
        waiting = sum(1 for session in self.by_sid.values() if session.state is State.WAITING)
        in_call = sum(1 for session in self.by_sid.values() if session.state is State.IN_CALL)
        self.metrics.waiting.set(waiting)
        self.metrics.in_call.set(in_call)
        return waiting, in_call

    def gateway_lost(self, gateway_id: str) -> bool:
        """Tell whether a gateway we heard from has been silent past the loss limit."""
        if gateway_id == self.settings.gateway_id:
            return False
        seen = self.gateway_seen.get(gateway_id)
        if seen is None:
            return False
        limit_s = self.settings.heartbeat_interval_s * MISSED_HEARTBEATS + self.settings.resume_grace_s
        return self.clock() - seen > limit_s

    def online_count(self) -> int:
        """Sum the sessions of every gateway heard from within three heartbeats."""
        limit_s = self.settings.heartbeat_interval_s * MISSED_HEARTBEATS
        now = self.clock()
        others = sum(
            count
            for gateway_id, (count, seen) in self.online_by_gateway.items()
            if gateway_id != self.settings.gateway_id and now - seen <= limit_s
        )
        return others + len(self.by_sid)

    def resume_token(self, session: Session) -> str:
        """Issue a fresh resume token for the session and note when."""
        session.token_issued_at_s = self.clock()
        expires_at = self.clock_wall() + self.settings.resume_token_ttl_s
        return issue_token(self.token_key, session.session_id, session.browser_id, expires_at)

    # -- publishing ----------------------------------------------------------------------

    async def publish(self, subject: str, event: Event) -> None:
        if self.nats is None:
            raise RuntimeError("gateway is not connected to NATS")
        await self.nats.publish(subject, encode(event))

    async def to_gateway(self, gateway_id: str, kind: str, event: Event) -> None:
        await self.publish(subjects.gateway_subject(gateway_id, kind), event)

    async def submit_join(self, session: Session) -> None:
        """Send the session's waiting entry to the matcher, with its recent partners and blocks."""
        now = self.clock()
        recent = session.recent_partners(now, self.settings.recent_partners, self.settings.recent_window_s)
        join = MatchJoin(
            session_id=session.session_id,
            gateway_id=self.settings.gateway_id,
            boot_id=self.boot_id,
            browser_id=session.browser_id,
            country=session.country,
            wanted=session.wanted,
            ip_key=session.ip_key,
            waiting_since_us=session.waiting_since_us,
            widen=session.widen,
            recent_sessions=tuple(partner.session_id for partner in recent),
            recent_browsers=tuple(partner.browser_id for partner in recent),
            blocked_keys=session.active_blocks(now),
        )
        await self.publish(subjects.MATCH_JOIN, join)

    async def submit_leave(self, session: Session) -> None:
        await self.publish(subjects.MATCH_LEAVE, MatchLeave(session.session_id, self.settings.gateway_id))

    async def end_call(self, session: Session, reason: str) -> None:
        """End the session's call on this side and tell the partner's gateway."""
        call = session.end_call(self.clock())
        if call is None:
            return
        log.info("call_ended", call_id=call.call_id, session_id=session.session_id, reason=reason)
        ended = Ended(call_id=call.call_id, target_session=call.partner_session, reason=reason)
        await self.to_gateway(call.partner_gateway, subjects.GW_ENDED, ended)

    async def leave_queue(self, session: Session) -> None:
        if session.state is State.WAITING:
            session.state = State.IDLE
            session.pending = None
            await self.submit_leave(session)

    async def emit(self, session: Session, event: str, data: dict[str, object]) -> None:
        await self.sio.emit(event, data, to=session.sid)

    async def emit_error(self, sid: str, code: str, message: str) -> None:
        self.metrics.client_errors.labels(code=code).inc()
        await self.sio.emit("error", {"code": code, "message": message}, to=sid)
