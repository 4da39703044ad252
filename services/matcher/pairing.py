"""The pairing engine: pure logic with an injected clock, so properties can be tested directly.

It owns the waiting index, the calls proposed but not yet confirmed by both gateways, and
gateway liveness. The service layer feeds it events and publishes the actions it returns.
"""

import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from services.matcher.waiters import Waiter, WaiterIndex, compatible
from shared.events import ANSWERER, ANY_COUNTRY, OFFERER


@dataclass(frozen=True, slots=True)
class PairingRules:
    """Timing rules of the engine, all in seconds."""

    confirm_timeout_s: float = 2.0
    heartbeat_interval_s: float = 1.0
    missed_heartbeats: int = 3
    widen_after_s: float = 10.0
    recent_override_after_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Proposal:
    """A call offered to both gateways; `first` is the older waiter and makes the offer."""

    call_id: str
    first: Waiter
    second: Waiter

    def role_of(self, session_id: str) -> str:
        return OFFERER if session_id == self.first.session_id else ANSWERER


@dataclass(frozen=True, slots=True)
class Started:
    """Both gateways confirmed a proposal."""

    proposal: Proposal


@dataclass(frozen=True, slots=True)
class Requeued:
    """A proposal timed out; its sides went back to their places in the queue."""

    proposal: Proposal


Action = Proposal | Started | Requeued


@dataclass(slots=True)
class _Pending:
    proposal: Proposal
    deadline_s: float
    confirmed: set[str] = field(default_factory=set)
    left: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Gateway:
    boot_id: str
    last_seen_s: float


class Pairing:
    """Pairs waiting sessions; at most one queue entry and one proposal per session."""

    def __init__(self, rules: PairingRules, clock: Callable[[], float], new_call_id: Callable[[], str] | None = None) -> None:
        self.rules = rules
        self.index = WaiterIndex()
        self._clock = clock
        self._new_call_id = new_call_id or (lambda: secrets.token_urlsafe(12))
        self._pending: dict[str, _Pending] = {}
        self._pending_by_session: dict[str, str] = {}
        self._expiry: deque[str] = deque()
        self._gateways: dict[str, _Gateway] = {}
        # (session id, joined_at_s) in join order; an entry whose waiter re-joined since is stale.
        self._widen_due: deque[tuple[str, float]] = deque()
        self._override_due: deque[tuple[str, float]] = deque()
        self._arrivals = 0
        self.dropped_entries = 0

    # -- inputs ---------------------------------------------------------------------------

    def join(self, waiter: Waiter) -> list[Action]:
        """Queue a session, or pair it at once; a repeated join changes nothing."""
        if waiter.session_id in self.index or waiter.session_id in self._pending_by_session:
            return []
        self._note_gateway(waiter.gateway_id, waiter.boot_id)

        self._arrivals += 1
        waiter.order = (waiter.order[0], self._arrivals)
        waiter.joined_at_s = self._clock()
        if waiter.widen and waiter.wanted != ANY_COUNTRY:
            self._widen_due.append((waiter.session_id, waiter.joined_at_s))
        if waiter.recent_sessions or waiter.recent_browsers:
            self._override_due.append((waiter.session_id, waiter.joined_at_s))
        return self._insert_and_match(waiter)

    def leave(self, session_id: str) -> None:
        """Drop a session from the queue, or from a proposal that is still open."""
        self.index.remove(session_id)
        call_id = self._pending_by_session.get(session_id)
        if call_id is not None:
            self._pending[call_id].left.add(session_id)

    def confirm(self, call_id: str, session_id: str) -> list[Action]:
        """Record one side's confirmation; the second one starts the call."""
        pending = self._pending.get(call_id)
        if pending is None or session_id in pending.left:
            return []
        proposal = pending.proposal
        if session_id not in (proposal.first.session_id, proposal.second.session_id):
            return []

        pending.confirmed.add(session_id)
        if len(pending.confirmed) < 2:
            return []
        self._close_pending(call_id)
        return [Started(proposal)]

    def heartbeat(self, gateway_id: str, boot_id: str, draining: bool) -> None:
        """Record a gateway's liveness; a new boot id or a draining gateway drops its entries."""
        if draining:
            self.drop_gateway(gateway_id)
            self._gateways.pop(gateway_id, None)
            return
        self._note_gateway(gateway_id, boot_id)

    def drop_gateway(self, gateway_id: str) -> int:
        """Remove every waiting entry of a gateway; return how many went."""
        sessions = list(self.index.by_gateway.get(gateway_id, ()))
        for session_id in sessions:
            self.index.remove(session_id)
        self.dropped_entries += len(sessions)
        return len(sessions)

    # -- time ----------------------------------------------------------------------------

    def tick(self) -> list[Action]:
        """Expire proposals, drop silent gateways, widen due searches, retry long waiters."""
        actions: list[Action] = []
        self._drop_silent_gateways()
        actions.extend(self._expire_proposals())
        actions.extend(self._widen_due_waiters())
        actions.extend(self._retry_long_waiters())
        return actions

    # -- internals -----------------------------------------------------------------------

    def _note_gateway(self, gateway_id: str, boot_id: str) -> None:
        known = self._gateways.get(gateway_id)
        if known is not None and known.boot_id != boot_id:
            # A restarted gateway lost every session it had, so its old entries must go.
            self.drop_gateway(gateway_id)
        self._gateways[gateway_id] = _Gateway(boot_id, self._clock())

    def _gateway_alive(self, gateway_id: str) -> bool:
        gateway = self._gateways.get(gateway_id)
        if gateway is None:
            return False
        silence_limit_s = self.rules.heartbeat_interval_s * self.rules.missed_heartbeats
        return self._clock() - gateway.last_seen_s <= silence_limit_s

    def _drop_silent_gateways(self) -> None:
        for gateway_id in list(self.index.by_gateway):
            if not self._gateway_alive(gateway_id):
                self.drop_gateway(gateway_id)

    def _insert_and_match(self, waiter: Waiter) -> list[Action]:
        partner = self._find_partner(waiter)
        if partner is None:
            self.index.add(waiter)
            return []
        self.index.remove(partner.session_id)
        return [self._propose(partner, waiter)]

    def _find_partner(self, waiter: Waiter) -> Waiter | None:
        dead_gateways: set[str] = set()
        found = None
        for candidate in self.index.candidates(waiter):
            if candidate.gateway_id in dead_gateways or not self._gateway_alive(candidate.gateway_id):
                dead_gateways.add(candidate.gateway_id)
                continue
            if self._eligible(waiter, candidate):
                found = candidate
                break
        for gateway_id in dead_gateways:
            self.drop_gateway(gateway_id)
        return found

    def _eligible(self, a: Waiter, b: Waiter) -> bool:
        if a.session_id == b.session_id or a.browser_id == b.browser_id:
            return False
        if a.ip_key in b.blocked_keys or b.ip_key in a.blocked_keys:
            return False
        if not compatible(a, b):
            return False
        # Recent partners may meet again when both waited long: better than waiting on forever.
        if self._waited_long(a) and self._waited_long(b):
            return True
        return not _recent(a, b) and not _recent(b, a)

    def _waited_long(self, waiter: Waiter) -> bool:
        return self._clock() - waiter.joined_at_s >= self.rules.recent_override_after_s

    def _propose(self, older: Waiter, newer: Waiter) -> Proposal:
        first, second = (older, newer) if older.order <= newer.order else (newer, older)
        proposal = Proposal(self._new_call_id(), first, second)
        self._pending[proposal.call_id] = _Pending(proposal, self._clock() + self.rules.confirm_timeout_s)
        self._pending_by_session[first.session_id] = proposal.call_id
        self._pending_by_session[second.session_id] = proposal.call_id
        self._expiry.append(proposal.call_id)
        return proposal

    def _close_pending(self, call_id: str) -> _Pending:
        pending = self._pending.pop(call_id)
        for waiter in (pending.proposal.first, pending.proposal.second):
            self._pending_by_session.pop(waiter.session_id, None)
        return pending

    def _expire_proposals(self) -> list[Action]:
        actions: list[Action] = []
        now = self._clock()
        while self._expiry:
            call_id = self._expiry[0]
            pending = self._pending.get(call_id)
            if pending is not None and pending.deadline_s > now:
                break
            self._expiry.popleft()
            if pending is None:
                continue
            self._close_pending(call_id)
            actions.append(Requeued(pending.proposal))
            actions.extend(self._requeue(pending))
        return actions

    def _requeue(self, pending: _Pending) -> list[Action]:
        actions: list[Action] = []
        for waiter in (pending.proposal.first, pending.proposal.second):
            if waiter.session_id in pending.left or not self._gateway_alive(waiter.gateway_id):
                continue
            if waiter.session_id in self.index or waiter.session_id in self._pending_by_session:
                continue
            actions.extend(self._insert_and_match(waiter))
        return actions

    def _widen_due_waiters(self) -> list[Action]:
        actions: list[Action] = []
        now = self._clock()
        while self._widen_due:
            session_id, joined_at_s = self._widen_due[0]
            if now - joined_at_s < self.rules.widen_after_s:
                break
            self._widen_due.popleft()
            waiter = self.index.by_session.get(session_id)
            if waiter is None or waiter.joined_at_s != joined_at_s or waiter.widened:
                continue
            self.index.remove(waiter.session_id)
            widened = replace(waiter, wanted=ANY_COUNTRY, widened=True)
            actions.extend(self._insert_and_match(widened))
        return actions

    def _retry_long_waiters(self) -> list[Action]:
        # A waiter held back only by the recent-partner rule is retried once, when its wait
        # crosses the override time; the deque is in join order, so only due entries are read.
        actions: list[Action] = []
        now = self._clock()
        while self._override_due:
            session_id, joined_at_s = self._override_due[0]
            if now - joined_at_s < self.rules.recent_override_after_s:
                break
            self._override_due.popleft()
            waiter = self.index.by_session.get(session_id)
            if waiter is None or waiter.joined_at_s != joined_at_s:
                continue
            self.index.remove(waiter.session_id)
            actions.extend(self._insert_and_match(waiter))
        return actions


def _recent(a: Waiter, b: Waiter) -> bool:
    return b.session_id in a.recent_sessions or b.browser_id in a.recent_browsers
