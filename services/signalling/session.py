"""Per-browser session state held by the gateway that owns the socket."""

import enum
import time
from collections import deque
from dataclasses import dataclass, field

from services.signalling.ratelimit import TokenBucket
from shared.events import Matched


class State(enum.Enum):
    IDLE = "idle"
    WAITING = "waiting"
    IN_CALL = "in_call"


@dataclass(slots=True)
class Call:
    """The session's current call and where its partner lives."""

    call_id: str
    role: str
    partner_session: str
    partner_gateway: str
    partner_key: str
    partner_browser: str
    partner_country: str

    @classmethod
    def from_matched(cls, matched: Matched) -> "Call":
        return cls(
            call_id=matched.call_id,
            role=matched.role,
            partner_session=matched.partner_session,
            partner_gateway=matched.partner_gateway,
            partner_key=matched.partner_key,
            partner_browser=matched.partner_browser,
            partner_country=matched.partner_country,
        )


@dataclass(frozen=True, slots=True)
class PastPartner:
    """A partner from an ended call, kept for the recent-partner rule and for reports."""

    call_id: str
    session_id: str
    browser_id: str
    ip_key: str
    ended_at_s: float


@dataclass(slots=True)
class Session:
    """One connected browser tab; it lives exactly as long as its socket."""

    sid: str
    session_id: str
    browser_id: str
    ip_key: str
    previous_ip_key: str | None
    country: str
    hide_ip: bool
    limiter: TokenBucket
    state: State = State.IDLE
    wanted: str = "any"
    widen: bool = False
    waiting_since_us: int = 0
    pending: Matched | None = None
    pending_deadline_s: float = 0.0
    call: Call | None = None
    past_partners: deque[PastPartner] = field(default_factory=lambda: deque(maxlen=16))
    reported_calls: set[str] = field(default_factory=set)
    blocked_keys: dict[str, float] = field(default_factory=dict)
    token_issued_at_s: float = 0.0
    turn_renew_at_s: float | None = None
    moving: bool = False

    def start_waiting(self, wanted: str, widen: bool) -> None:
        self.state = State.WAITING
        self.wanted = wanted
        self.widen = widen
        self.waiting_since_us = time.time_ns() // 1000
        self.pending = None
        self.call = None

    def end_call(self, now_s: float) -> Call | None:
        """Leave the current call, remembering the partner; return the call that ended."""
        call = self.call
        if call is not None:
            partner = PastPartner(call.call_id, call.partner_session, call.partner_browser, call.partner_key, now_s)
            self.past_partners.append(partner)
        self.call = None
        self.pending = None
        self.state = State.IDLE
        self.turn_renew_at_s = None
        return call

    def recent_partners(self, now_s: float, count: int, window_s: float) -> list[PastPartner]:
        """Return the last `count` partners whose calls ended within `window_s`."""
        if count <= 0:
            return []
        recent = [partner for partner in self.past_partners if now_s - partner.ended_at_s <= window_s]
        return recent[-count:]

    def active_blocks(self, now_s: float) -> tuple[str, ...]:
        """Return the ip_keys this session reported whose block has not run out."""
        for key in [key for key, until in self.blocked_keys.items() if until <= now_s]:
            del self.blocked_keys[key]
        return tuple(self.blocked_keys)
