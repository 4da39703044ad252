"""Handlers for events that browsers send over Socket.IO."""

import secrets
from collections.abc import Awaitable, Callable
from typing import Protocol

import socketio
import structlog
from nats.js.kv import KeyValue

from services.signalling import validation
from services.signalling.client_address import client_address
from services.signalling.core import GatewayCore
from services.signalling.geo import CountryLookup
from services.signalling.ice_filter import filter_signal
from services.signalling.ratelimit import TokenBucket
from services.signalling.resume import restore_into, verify_token
from services.signalling.session import Session, State
from services.signalling.validation import ClientError
from shared import subjects
from shared.bans import read_blocks
from shared.events import ModerationReport, Moved, Relay
from shared.ipkey import ip_key, short_key

log = structlog.get_logger("gateway")

Handler = Callable[[Session, object], Awaitable[None]]


class BanLookup(Protocol):
    """The gateway's local copy of the bans bucket."""

    def banned_until(self, ip_key: str, now_s: float) -> float | None: ...


class GameValidator(Protocol):
    def __call__(self, data: object) -> dict[str, object]: ...


class BrowserEvents:
    """Validates each browser event, checks it against the session state and acts on it."""

    def __init__(
        self, core: GatewayCore, countries: CountryLookup, bans: BanLookup | None, validate_game: GameValidator | None
    ) -> None:
        self.core = core
        self.countries = countries
        self.bans = bans
        self.validate_game = validate_game
        self.report_limiters: dict[str, TokenBucket] = {}
        self.blocks_bucket: KeyValue | None = None
        self.handlers: dict[str, Handler] = {
            "join": self.on_join,
            "skip": self.on_skip,
            "stop": self.on_stop,
            "signal": self.on_signal,
            "chat": self.on_chat,
            "typing": self.on_typing,
            "game": self.on_game,
            "report": self.on_report,
        }

    def register(self, sio: socketio.AsyncServer) -> None:
        sio.on("connect", self.on_connect)
        sio.on("disconnect", self.on_disconnect)
        for event in self.handlers:
            sio.on(event, self._guarded(event))
        sio.on("*", self.on_unknown)

    # -- connection ------------------------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict[str, object], auth: object) -> None:
        core = self.core
        if core.draining:
            core.metrics.connections_refused.labels(reason="draining").inc()
            raise socketio.exceptions.ConnectionRefusedError({"code": "draining", "message": "gateway is draining"})

        address = self._address(environ)
        if address is None:
            core.metrics.connections_refused.labels(reason="no_address").inc()
            raise socketio.exceptions.ConnectionRefusedError(
                {"code": "no_address", "message": "client address unknown"}
            )

        settings = core.settings
        key = ip_key(settings.common.ip_key_secret, address)
        previous = ip_key(settings.previous_ip_key_secret, address) if settings.previous_ip_key_secret else None
        until = self._banned_until(key, previous)
        if until is not None:
            core.metrics.connections_refused.labels(reason="banned").inc()
            log.info("connection_banned", ip_key=short_key(key))
            await core.sio.emit("banned", {"until": until}, to=sid)
            raise socketio.exceptions.ConnectionRefusedError({"code": "banned", "until": until})

        browser_id = validation.parse_browser_id(auth) or secrets.token_urlsafe(16)
        hide_ip = isinstance(auth, dict) and auth.get("hide_ip") is True
        session = Session(
            sid=sid,
            session_id=secrets.token_urlsafe(12),
            browser_id=browser_id,
            ip_key=key,
            previous_ip_key=previous,
            country=self.countries.country(address),
            hide_ip=hide_ip,
            limiter=TokenBucket(settings.events_per_second, settings.event_burst),
        )
        resumed = await self._resume(session, auth)
        await self._load_blocks(session)
        core.add(session)
        log.info(
            "session_connected",
            session_id=session.session_id,
            ip_key=short_key(key),
            country=session.country,
            resumed=resumed,
        )
        hello: dict[str, object] = {
            "session_id": session.session_id,
            "country": session.country,
            "online": core.online_count(),
            "resume_token": core.resume_token(session),
        }
        if resumed:
            hello["resumed"] = self._resumed_state(session)
        await core.emit(session, "hello", hello)
        if resumed:
            await self._carry_on(session)

    async def on_disconnect(self, sid: str, reason: object = None) -> None:
        session = self.core.remove(sid)
        if session is None:
            return
        if session.moving:
            # Its snapshot waits in the resume bucket; another gateway carries the session on.
            log.info("session_moving", session_id=session.session_id)
            return
        if session.state is State.WAITING:
            await self.core.submit_leave(session)
        elif session.state is State.IN_CALL:
            await self.core.end_call(session, "disconnected")
        log.info("session_disconnected", session_id=session.session_id)

    async def _load_blocks(self, session: Session) -> None:
        """Copy the reporter's block list from earlier sessions, so a reconnect keeps its blocks."""
        if self.blocks_bucket is None:
            return
        now_wall = self.core.clock_wall()
        timeout_s = self.core.settings.common.nats_connect_timeout_s
        blocks = await read_blocks(self.blocks_bucket, session.ip_key, now_wall, timeout_s)
        for key, until_wall in blocks.items():
            session.blocked_keys[key] = self.core.clock() + (until_wall - now_wall)

    def prune_report_limiters(self) -> None:
        """Forget report limiters that have refilled: a fresh bucket allows exactly the same."""
        now = self.core.clock()
        for key in [key for key, bucket in self.report_limiters.items() if bucket.is_full(now)]:
            del self.report_limiters[key]

    # -- resume ----------------------------------------------------------------------------

    async def _resume(self, session: Session, auth: object) -> bool:
        """Take over a session a draining gateway left behind, when the token and snapshot allow."""
        core = self.core
        token = auth.get("resume_token") if isinstance(auth, dict) else None
        if token is None or core.resume_store is None:
            return False
        session_id = None
        for key in core.token_keys:
            session_id = session_id or verify_token(key, token, session.browser_id, core.clock_wall())
        if session_id is None or session_id in core.by_session:
            log.info("resume_rejected", reason="invalid or expired token")
            return False
        try:
            snapshot = await core.resume_store.take(session_id)
            if snapshot is None:
                log.info("resume_rejected", reason="no snapshot", session_id=session_id)
                return False
            session.session_id = session_id
            restore_into(session, snapshot, core.clock())
        except Exception as exc:
            log.warning("resume_failed", session_id=session_id, error=str(exc) or type(exc).__name__)
            session.state, session.call = State.IDLE, None
            return False
        core.metrics.resumed.inc()
        return True

    def _resumed_state(self, session: Session) -> dict[str, object]:
        state: dict[str, object] = {"state": session.state.value}
        if session.call is not None:
            state.update(
                call_id=session.call.call_id, role=session.call.role, partner_country=session.call.partner_country
            )
        return state

    async def _carry_on(self, session: Session) -> None:
        """Tell the partner's gateway where the session lives now, or re-enter the queue."""
        core = self.core
        call = session.call
        if session.state is State.WAITING:
            await core.submit_join(session)
            await core.emit(session, "waiting", {})
            return
        if call is None or core.resume_store is None:
            return
        await core.resume_store.set_location(session.session_id, core.settings.gateway_id)
        # If the partner moved too, one of the two reads the other's location after writing its own.
        partner_gateway = await core.resume_store.location(call.partner_session)
        if partner_gateway is not None:
            call.partner_gateway = partner_gateway
        moved = Moved(call.call_id, call.partner_session, session.session_id, core.settings.gateway_id)
        await core.to_gateway(call.partner_gateway, subjects.GW_MOVED, moved)
        log.info("call_resumed", call_id=call.call_id, session_id=session.session_id)

    def _address(self, environ: dict[str, object]) -> str | None:
        request = environ.get("aiohttp.request")
        peer = getattr(request, "remote", None)
        headers = getattr(request, "headers", {})
        forwarded = headers.get("X-Forwarded-For") if hasattr(headers, "get") else None
        return client_address(peer, forwarded, self.core.settings.trusted_proxies)

    def _banned_until(self, key: str, previous: str | None) -> float | None:
        if self.bans is None:
            return None
        now = self.core.clock_wall()
        for candidate in (key, previous):
            if candidate is None:
                continue
            until = self.bans.banned_until(candidate, now)
            if until is not None:
                return until
        return None

    # -- dispatch --------------------------------------------------------------------------

    def _guarded(self, event: str) -> Callable[[str, object], Awaitable[None]]:
        handler = self.handlers[event]

        async def guarded(sid: str, data: object = None) -> None:
            session = self.core.by_sid.get(sid)
            if session is None:
                return
            self.core.metrics.events.labels(event=event).inc()
            if not session.limiter.allow(self.core.clock()):
                await self.core.emit_error(sid, "rate_limited", f"too many events; slow down ({event})")
                return
            try:
                await handler(session, data)
            except ClientError as exc:
                log.info("event_rejected", session_id=session.session_id, event_name=event, code=exc.code)
                await self.core.emit_error(sid, exc.code, exc.message)

        return guarded

    async def on_unknown(self, event: str, sid: str, data: object = None) -> None:
        self.core.metrics.events.labels(event="unknown").inc()
        await self.core.emit_error(sid, "unknown_event", f"unknown event {event[:40]!r}")

    # -- queue -----------------------------------------------------------------------------

    async def on_join(self, session: Session, data: object) -> None:
        request = validation.parse_join(data)
        if session.state is State.IN_CALL:
            raise ClientError("already_in_call", "leave the current call (skip or stop) before joining again")
        self._check_not_banned(session)

        if session.state is State.WAITING and (request.wanted, request.widen) == (session.wanted, session.widen):
            await self.core.emit(session, "waiting", {})
            return
        if session.state is State.WAITING:
            await self.core.submit_leave(session)
        session.start_waiting(request.wanted, request.widen)
        await self.core.submit_join(session)
        await self.core.emit(session, "waiting", {})

    async def on_skip(self, session: Session, data: object) -> None:
        if session.state is State.IDLE:
            raise ClientError("not_in_call", "skip needs a call or a search in progress; send join to start")
        if session.state is State.IN_CALL:
            await self.core.end_call(session, "skip")
            await self._requeue(session)

    async def on_stop(self, session: Session, data: object) -> None:
        if session.state is State.IN_CALL:
            await self.core.end_call(session, "stop")
        else:
            await self.core.leave_queue(session)
        await self.core.emit(session, "stopped", {})

    async def _requeue(self, session: Session) -> None:
        self._check_not_banned(session)
        session.start_waiting(session.wanted, session.widen)
        await self.core.submit_join(session)
        await self.core.emit(session, "waiting", {})

    def _check_not_banned(self, session: Session) -> None:
        until = self._banned_until(session.ip_key, session.previous_ip_key)
        if until is not None:
            raise ClientError("banned", "this address is banned for now")

    # -- in-call relays ----------------------------------------------------------------------

    async def on_signal(self, session: Session, data: object) -> None:
        request = validation.parse_signal(data, self.core.settings.signal_max_bytes)
        body = request.data
        if session.hide_ip:
            # Backstop for "Hide my IP": only relay candidates of this session reach the partner.
            forward, body = filter_signal(request.kind, body)
            if not forward:
                self.core.metrics.relays_dropped.labels(reason="hidden_address").inc()
                return
        await self._relay(session, request.call_id, "signal", {"kind": request.kind, "data": body})

    async def on_chat(self, session: Session, data: object) -> None:
        request = validation.parse_chat(data, self.core.settings.chat_max_chars)
        await self._relay(session, request.call_id, "chat", {"text": request.text})

    async def on_typing(self, session: Session, data: object) -> None:
        request = validation.parse_call(data, "typing")
        await self._relay(session, request.call_id, "typing", {})

    async def on_game(self, session: Session, data: object) -> None:
        request = validation.parse_call(data, "game")
        if self.validate_game is None:
            raise ClientError("unknown_event", "games are not enabled on this gateway")
        try:
            game = self.validate_game(data)
        except ValueError as exc:
            raise ClientError("invalid_payload", str(exc)) from exc
        await self._relay(session, request.call_id, "game", game)

    async def _relay(self, session: Session, call_id: str, event: str, data: dict[str, object]) -> None:
        call = session.call
        if call is None:
            raise ClientError("not_in_call", f"{event} needs a call in progress")
        if call.call_id != call_id:
            raise ClientError("wrong_call", f"{event}.call_id is not your current call")
        relay = Relay(call_id=call_id, target_session=call.partner_session, event=event, data=data)
        await self.core.to_gateway(call.partner_gateway, subjects.GW_RELAY, relay)

    # -- reports -----------------------------------------------------------------------------

    async def on_report(self, session: Session, data: object) -> None:
        request = validation.parse_report(data)
        try:
            await self._send_report(session, request)
        finally:
            # Reporting ends the reporter's call even when the report is rejected: the page has
            # already left it, and the partner must not sit in a dead call.
            if session.call is not None and session.call.call_id == request.call_id:
                await self.core.end_call(session, "ended")
        await self.core.emit(session, "reported", {"call_id": request.call_id})

    async def _send_report(self, session: Session, request: validation.ReportRequest) -> None:
        self._check_not_banned(session)
        partner_key = self._reportable_partner(session, request.call_id)
        if request.call_id in session.reported_calls or partner_key in session.blocked_keys:
            raise ClientError("already_reported", "you already reported this partner")
        if partner_key == session.ip_key:
            raise ClientError("invalid_report", "you cannot report yourself")
        limiter = self.report_limiters.setdefault(
            session.ip_key,
            TokenBucket(self.core.settings.reports_per_hour / 3600.0, self.core.settings.reports_per_hour),
        )
        if not limiter.allow(self.core.clock()):
            raise ClientError("rate_limited", "too many reports; try again later")

        session.reported_calls.add(request.call_id)
        session.blocked_keys[partner_key] = self.core.clock() + self.core.settings.policy.report_block_s
        report = ModerationReport(request.call_id, session.ip_key, partner_key, request.reason)
        await self.core.publish(subjects.MODERATION_REPORT, report)
        log.info("report_sent", session_id=session.session_id, call_id=request.call_id, reason=request.reason)

    def _reportable_partner(self, session: Session, call_id: str) -> str:
        if session.call is not None and session.call.call_id == call_id:
            return session.call.partner_key
        now = self.core.clock()
        for partner in session.past_partners:
            if partner.call_id == call_id and now - partner.ended_at_s <= self.core.settings.report_grace_s:
                return partner.ip_key
        raise ClientError("invalid_report", "you can report only your current or just-ended call")
