"""Handlers for NATS deliveries to this gateway: assignments, call starts, relays and ends."""

from collections.abc import Awaitable, Callable

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg

from services.signalling.core import GatewayCore
from services.signalling.session import Call, Session, State
from shared import subjects
from shared.codec import decode
from shared.errors import DecodeError
from shared.events import (
    CallStart,
    Ended,
    Event,
    GatewayHeartbeat,
    MatchConfirm,
    Matched,
    MatchEpoch,
    Moved,
    Relay,
)

log = structlog.get_logger("gateway")

# Seconds a confirmed side waits for the call to start beyond the matcher's confirm timeout
# before it re-submits its entry. By then the matcher has re-queued or dropped the proposal.
START_GRACE_S = 1.0

RELAYED_EVENTS = frozenset({"signal", "chat", "typing", "game"})


class Deliveries:
    """Acts on messages other services address to this gateway."""

    def __init__(self, core: GatewayCore, ice_servers_for: Callable[[Session], list[dict[str, object]]]) -> None:
        self.core = core
        self.ice_servers_for = ice_servers_for
        self.drop_next_matched = 0
        self._routes: dict[str, tuple[type[Event], Callable[[Event], Awaitable[None]]]] = {
            subjects.GW_MATCHED: (Matched, self.on_matched),  # type: ignore[dict-item]  # handlers narrow Event
            subjects.GW_START: (CallStart, self.on_start),  # type: ignore[dict-item]
            subjects.GW_RELAY: (Relay, self.on_relay),  # type: ignore[dict-item]
            subjects.GW_ENDED: (Ended, self.on_ended),  # type: ignore[dict-item]
            subjects.GW_MOVED: (Moved, self.on_moved),  # type: ignore[dict-item]
        }

    async def subscribe(self, client: Client) -> None:
        await client.subscribe(subjects.gateway_wildcard(self.core.settings.gateway_id), cb=self._on_message)

    async def _on_message(self, message: Msg) -> None:
        kind = message.subject.rsplit(".", 1)[-1]
        route = self._routes.get(kind)
        if route is None:
            self.core.metrics.rejected.labels(subject="gw.*.unknown").inc()
            log.warning("nats_message_rejected", subject=message.subject, error="unknown delivery kind")
            return
        event_type, handler = route
        try:
            event = decode(message.data, event_type)
        except DecodeError as exc:
            self.core.metrics.rejected.labels(subject=f"gw.*.{kind}").inc()
            log.warning("nats_message_rejected", subject=message.subject, error=str(exc))
            return
        try:
            await handler(event)
        except Exception:
            log.exception("delivery_failed", subject=message.subject)

    # -- matching --------------------------------------------------------------------------

    async def on_matched(self, matched: Matched) -> None:
        core = self.core
        if self.drop_next_matched > 0:
            # Test hook: simulates one lost core-NATS delivery.
            self.drop_next_matched -= 1
            log.warning("matched_dropped_by_test_hook", call_id=matched.call_id)
            return
        if matched.epoch < core.epoch:
            core.metrics.stale_assignments.inc()
            log.info("stale_assignment_ignored", call_id=matched.call_id, epoch=matched.epoch, current=core.epoch)
            return
        session = core.by_session.get(matched.session_id)
        if session is None or session.state is not State.WAITING:
            return

        core.epoch = max(core.epoch, matched.epoch)
        session.pending = matched
        session.pending_deadline_s = core.clock() + core.settings.confirm_timeout_s + START_GRACE_S
        confirm = MatchConfirm(call_id=matched.call_id, session_id=session.session_id, epoch=matched.epoch)
        await core.publish(subjects.MATCH_CONFIRM, confirm)

    async def on_start(self, start: CallStart) -> None:
        session = self.core.by_session.get(start.session_id)
        if session is None or session.pending is None or session.pending.call_id != start.call_id:
            return
        await self._begin_call(session)

    async def _begin_call(self, session: Session) -> None:
        matched = session.pending
        assert matched is not None
        session.call = Call.from_matched(matched)
        session.pending = None
        session.state = State.IN_CALL
        self.core.metrics.calls_started.inc()
        log.info("call_started", call_id=matched.call_id, session_id=session.session_id, role=matched.role)
        await self.core.emit(
            session,
            "matched",
            {
                "call_id": matched.call_id,
                "role": matched.role,
                "partner_country": matched.partner_country,
                "ice_servers": self.ice_servers_for(session),
            },
        )

    async def on_epoch(self, event: MatchEpoch) -> None:
        """Adopt a newer epoch and re-submit every waiting session to the new leader."""
        core = self.core
        if event.epoch <= core.epoch:
            return
        core.epoch = event.epoch
        waiting = [session for session in core.by_sid.values() if session.state is State.WAITING]
        log.info("epoch_adopted", epoch=event.epoch, leader_id=event.leader_id, resubmitted=len(waiting))
        for session in waiting:
            session.pending = None
            await core.submit_join(session)

    async def expire_pending(self, session: Session) -> None:
        """Re-submit the session when its confirmed assignment never started."""
        pending = session.pending
        if pending is None or session.pending_deadline_s > self.core.clock() or session.state is not State.WAITING:
            return
        log.info("assignment_expired", call_id=pending.call_id, session_id=session.session_id)
        session.pending = None
        await self.core.submit_join(session)

    # -- calls -----------------------------------------------------------------------------

    async def on_relay(self, relay: Relay) -> None:
        core = self.core
        session = core.by_session.get(relay.target_session)
        if session is None:
            core.metrics.relays_dropped.labels(reason="no_session").inc()
            return
        if session.pending is not None and session.pending.call_id == relay.call_id:
            # The partner's side started, so the start message to this side was lost or is late.
            await self._begin_call(session)
        if session.call is None or session.call.call_id != relay.call_id:
            core.metrics.relays_dropped.labels(reason="wrong_call").inc()
            return
        if relay.event not in RELAYED_EVENTS or not isinstance(relay.data, dict):
            core.metrics.relays_dropped.labels(reason="invalid").inc()
            return
        await core.emit(session, relay.event, {**relay.data, "call_id": relay.call_id})

    async def on_ended(self, ended: Ended) -> None:
        core = self.core
        session = core.by_session.get(ended.target_session)
        if session is None:
            return
        if session.pending is not None and session.pending.call_id == ended.call_id:
            session.pending = None
            await core.submit_join(session)
            return
        if session.call is None or session.call.call_id != ended.call_id:
            return
        session.end_call(core.clock())
        log.info("partner_left", call_id=ended.call_id, session_id=session.session_id, reason=ended.reason)
        await core.emit(session, "partner_left", {"call_id": ended.call_id, "reason": ended.reason})

    async def on_moved(self, moved: Moved) -> None:
        session = self.core.by_session.get(moved.target_session)
        if session is None or session.call is None or session.call.call_id != moved.call_id:
            return
        session.call.partner_session = moved.session_id
        session.call.partner_gateway = moved.gateway_id
        log.info("partner_moved", call_id=moved.call_id, session_id=session.session_id, gateway=moved.gateway_id)

    # -- heartbeats ------------------------------------------------------------------------

    async def end_orphaned_call(self, session: Session) -> None:
        """End the session's call when the partner's gateway went silent and the partner never resumed."""
        core = self.core
        call = session.call
        if call is None or not core.gateway_lost(call.partner_gateway):
            return
        session.end_call(core.clock())
        log.info(
            "partner_gateway_lost",
            call_id=call.call_id,
            session_id=session.session_id,
            partner_gateway=call.partner_gateway,
        )
        await core.emit(session, "partner_left", {"call_id": call.call_id, "reason": "disconnected"})

    async def on_heartbeat(self, beat: GatewayHeartbeat) -> None:
        self.core.gateway_seen[beat.gateway_id] = self.core.clock()
        if beat.draining:
            self.core.online_by_gateway.pop(beat.gateway_id, None)
            return
        self.core.online_by_gateway[beat.gateway_id] = (beat.sessions, self.core.clock())
