"""Typed events carried on NATS, one frozen dataclass per subject.

Field types are limited to what `shared.codec` checks: str, int, float, bool, `str | None`,
`tuple[str, ...]` and `object` (any msgpack value, validated by the receiver).
"""

from dataclasses import dataclass
from typing import ClassVar

OFFERER = "offerer"
ANSWERER = "answerer"
ANY_COUNTRY = "any"
UNKNOWN_COUNTRY = "XX"


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every NATS event; `kind` names the event on the wire."""

    kind: ClassVar[str] = "event"


@dataclass(frozen=True, slots=True)
class MatchJoin(Event):
    """A gateway puts one of its sessions into the waiting queue (or re-submits it)."""

    kind: ClassVar[str] = "match.join"
    session_id: str
    gateway_id: str
    boot_id: str
    browser_id: str
    country: str
    wanted: str
    ip_key: str
    waiting_since_us: int
    widen: bool = False
    recent_sessions: tuple[str, ...] = ()
    recent_browsers: tuple[str, ...] = ()
    blocked_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MatchLeave(Event):
    """A session stopped waiting: it left, stopped, or its gateway lost it."""

    kind: ClassVar[str] = "match.leave"
    session_id: str
    gateway_id: str


@dataclass(frozen=True, slots=True)
class MatchEpoch(Event):
    """The active matcher's epoch; gateways re-submit waiting sessions when it rises."""

    kind: ClassVar[str] = "match.epoch"
    epoch: int
    leader_id: str


@dataclass(frozen=True, slots=True)
class MatchConfirm(Event):
    """A gateway accepts an assignment for one of its sessions."""

    kind: ClassVar[str] = "match.confirm"
    call_id: str
    session_id: str
    epoch: int


@dataclass(frozen=True, slots=True)
class Matched(Event):
    """The matcher proposes a call to one side; the call starts when both sides confirm."""

    kind: ClassVar[str] = "gw.matched"
    call_id: str
    epoch: int
    session_id: str
    partner_session: str
    partner_gateway: str
    partner_key: str
    partner_browser: str
    partner_country: str
    role: str


@dataclass(frozen=True, slots=True)
class CallStart(Event):
    """Both sides confirmed: the gateway may tell its browser that the call began."""

    kind: ClassVar[str] = "gw.start"
    call_id: str
    epoch: int
    session_id: str


@dataclass(frozen=True, slots=True)
class Relay(Event):
    """A browser event forwarded to the partner's gateway."""

    kind: ClassVar[str] = "gw.relay"
    call_id: str
    target_session: str
    event: str
    data: object


@dataclass(frozen=True, slots=True)
class Ended(Event):
    """The call ended on one side; the other side's browser gets `partner_left`."""

    kind: ClassVar[str] = "gw.ended"
    call_id: str
    target_session: str
    reason: str


@dataclass(frozen=True, slots=True)
class Moved(Event):
    """The partner's session now lives on another gateway (call resume)."""

    kind: ClassVar[str] = "gw.moved"
    call_id: str
    target_session: str
    session_id: str
    gateway_id: str


@dataclass(frozen=True, slots=True)
class GatewayHeartbeat(Event):
    """Liveness and load of one gateway process."""

    kind: ClassVar[str] = "gateway.heartbeat"
    gateway_id: str
    boot_id: str
    sessions: int
    waiting: int
    draining: bool = False


@dataclass(frozen=True, slots=True)
class ModerationReport(Event):
    """One person reports their current or just-ended partner."""

    kind: ClassVar[str] = "moderation.report"
    call_id: str
    reporter_key: str
    reported_key: str
    reason: str
