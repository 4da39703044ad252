"""The pairing engine: pure logic with an injected clock, so properties can be tested directly.

It owns the waiting index, the calls proposed but not yet confirmed by both gateways, and
gateway liveness. The service layer feeds it events and publishes the actions it returns.
"""

import base64
import enum
import hashlib
import itertools
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from services.matcher.waiters import Order, Waiter, WaiterIndex, compatible
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
    """A proposal timed out or lost a side, and its remaining sides went back to their places in the queue."""

    proposal: Proposal


Action = Proposal | Started | Requeued


class Rank(enum.IntEnum):
    """Acceptability of a pair. The engine takes the oldest candidate of the best rank."""

    NEVER = 0
    RECENT_OVERRIDE = 1
    FRESH = 2


@dataclass(slots=True)
class _Pending:
    proposal: Proposal
    deadline_s: float
    confirmed: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _Gateway:
    boot_id: str
    last_seen_s: float
    # Set when the gateway fell silent. A later message with the same boot id revives it.
    silent: bool = False


class _Due(NamedTuple):
    """A check planned for one queue entry, stale once the entry left or re-joined."""

    session_id: str
    order: Order
    joined_at_s: float


class CallIds:
    """Unique, unguessable call ids: a keyed hash of a counter.

    Cheaper than `secrets.token_urlsafe` per call, which reads the OS random source each time,
    and the counter behind an id cannot be read back without the key.
    """

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._counter = itertools.count()

    def __call__(self) -> str:
        number = next(self._counter).to_bytes(8, "big")
        digest = hashlib.blake2b(number, key=self._key, digest_size=12).digest()
        return base64.urlsafe_b64encode(digest).decode()


class Pairing:
    """Pairs waiting sessions. A session has at most one queue entry or one open proposal."""

    def __init__(
        self, rules: PairingRules, clock: Callable[[], float], new_call_id: Callable[[], str] | None = None
    ) -> None:
        self.rules = rules
        self.index = WaiterIndex()
        self._clock = clock
        self._new_call_id = new_call_id or CallIds()
        self._pending: dict[str, _Pending] = {}
        self._pending_by_session: dict[str, str] = {}
        # Call ids in proposal order; the clock never goes back, so deadlines are in order too.
        self._expiry: deque[str] = deque()
        # Proposals closed by a leave or a dead gateway, with the sides that went back to the
        # queue. The next tick matches those sides again.
        self._abandoned: deque[tuple[Proposal, tuple[Waiter, ...]]] = deque()
        self._gateways: dict[str, _Gateway] = {}
        self._retired_boots: set[str] = set()
        # Both deques are in join order, so a tick reads only the entries that are due.
        self._widen_due: deque[_Due] = deque()
        self._override_due: deque[_Due] = deque()
        self._arrivals = 0
        self.dropped_entries = 0

    # -- inputs ---------------------------------------------------------------------------

    def join(self, waiter: Waiter) -> list[Action]:
        """Queue a session, or pair it at once; a repeated join changes nothing."""
        if waiter.boot_id in self._retired_boots:
            return []
        self._note_gateway(waiter.gateway_id, waiter.boot_id)
        if waiter.session_id in self.index or waiter.session_id in self._pending_by_session:
            return []

        self._arrivals += 1
        waiter = _arrived(waiter, (waiter.order[0], self._arrivals), self._clock())
        due = _Due(waiter.session_id, waiter.order, waiter.joined_at_s)
        if waiter.widen and waiter.wanted != ANY_COUNTRY:
            self._widen_due.append(due)
        # Every entry is retried once when its wait crosses the override time, because a pair
        # held apart only by the recent-partner rule becomes eligible at that moment.
        self._override_due.append(due)
        return self._insert_and_match(self._widened_if_due(waiter))

    def leave(self, session_id: str) -> None:
        """Drop a session from the queue, or from an open proposal.

        The other side of such a proposal goes back to the queue at once and is matched again
        at the next tick, so it does not wait for the confirm timeout.
        """
        self.index.remove(session_id)
        call_id = self._pending_by_session.get(session_id)
        if call_id is not None:
            self._abandon(call_id, lambda waiter: waiter.session_id == session_id)

    def confirm(self, call_id: str, session_id: str) -> list[Action]:
        """Record one side's confirmation; the second one starts the call."""
        pending = self._pending.get(call_id)
        if pending is None:
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
        if boot_id in self._retired_boots:
            return
        if draining:
            # A draining process sends no more joins, so anything later from this boot is stale.
            self._retired_boots.add(boot_id)
            self._declare_dead(gateway_id)
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
        """Drop silent gateways, re-match sides of abandoned proposals, expire proposals, widen, retry.

        After a tick no two waiting entries are eligible for each other.
        """
        self._drop_silent_gateways()
        actions: list[Action] = []
        actions.extend(self._rematch_abandoned())
        actions.extend(self._expire_proposals())
        actions.extend(self._widen_due_waiters())
        actions.extend(self._retry_long_waiters())
        return actions

    def _rank(self, a: Waiter, b: Waiter) -> Rank:
        """Rank a possible pair by the matching rules at the current time."""
        if a.session_id == b.session_id or a.browser_id == b.browser_id:
            return Rank.NEVER
        if a.ip_key in b.blocked_keys or b.ip_key in a.blocked_keys:
            return Rank.NEVER
        if not compatible(a, b):
            return Rank.NEVER
        if not _recent(a, b) and not _recent(b, a):
            return Rank.FRESH
        # Recent partners may meet again when both waited long: better than waiting on forever.
        if self._waited_long(a) and self._waited_long(b):
            return Rank.RECENT_OVERRIDE
        return Rank.NEVER

    def pending_sessions(self) -> set[str]:
        """Return the sessions of every open proposal."""
        return set(self._pending_by_session)

    # -- gateways ------------------------------------------------------------------------

    def _note_gateway(self, gateway_id: str, boot_id: str) -> None:
        known = self._gateways.get(gateway_id)
        if known is not None and known.boot_id == boot_id:
            # NOTE: entries dropped while the gateway was silent stay dropped. The gateway
            # re-submits waiting sessions only when the epoch rises, so until then they wait alone.
            known.last_seen_s = self._clock()
            known.silent = False
            return
        if known is not None:
            # A restarted gateway lost every session it had, so its old entries must go, and
            # late messages from the old process must not bring them back.
            self._declare_dead(gateway_id)
            self._retired_boots.add(known.boot_id)
        self._gateways[gateway_id] = _Gateway(boot_id, self._clock())

    def _declare_dead(self, gateway_id: str) -> None:
        """Drop a gateway's queue entries and close the open proposals it takes part in."""
        gateway = self._gateways.get(gateway_id)
        if gateway is not None:
            gateway.silent = True
        self.drop_gateway(gateway_id)

        # A scan of the open proposals, which only a gateway's death pays for.
        def on_gateway(waiter: Waiter) -> bool:
            return waiter.gateway_id == gateway_id

        affected = [
            call_id
            for call_id, pending in self._pending.items()
            if on_gateway(pending.proposal.first) or on_gateway(pending.proposal.second)
        ]
        for call_id in affected:
            self._abandon(call_id, on_gateway)

    def _gateway_alive(self, gateway_id: str, boot_id: str) -> bool:
        gateway = self._gateways.get(gateway_id)
        if gateway is None or gateway.silent or gateway.boot_id != boot_id:
            return False
        silence_limit_s = self.rules.heartbeat_interval_s * self.rules.missed_heartbeats
        return self._clock() - gateway.last_seen_s <= silence_limit_s

    def _drop_silent_gateways(self) -> None:
        for gateway_id, gateway in list(self._gateways.items()):
            if not gateway.silent and not self._gateway_alive(gateway_id, gateway.boot_id):
                self._declare_dead(gateway_id)
        # Entries of a gateway that was never heard of, or was forgotten, cannot be delivered.
        for gateway_id in [gateway_id for gateway_id in self.index.by_gateway if gateway_id not in self._gateways]:
            self.drop_gateway(gateway_id)

    # -- matching ------------------------------------------------------------------------

    def _insert_and_match(self, waiter: Waiter) -> list[Action]:
        partner = self._find_partner(waiter)
        if partner is None:
            self.index.add(waiter)
            return []
        self.index.remove(partner.session_id)
        return [self._propose(partner, waiter)]

    def _find_partner(self, waiter: Waiter) -> Waiter | None:
        """Return the oldest fresh candidate, else the oldest recent partner both may meet again.

        The walk reads past only candidates the newcomer may not meet (recent partners, other
        tabs of its browser, blocked keys, entries of gateways silent since the last tick), so
        it is short in practice. Entries of silent gateways go at the next tick.
        """
        fallback: Waiter | None = None
        for candidate in self.index.candidates(waiter):
            if not self._gateway_alive(candidate.gateway_id, candidate.boot_id):
                continue
            rank = self._rank(waiter, candidate)
            if rank is Rank.FRESH:
                return candidate
            if rank is Rank.RECENT_OVERRIDE and fallback is None:
                fallback = candidate
        return fallback

    def _waited_long(self, waiter: Waiter) -> bool:
        return self._clock() - waiter.joined_at_s >= self.rules.recent_override_after_s

    def _widened_if_due(self, waiter: Waiter) -> Waiter:
        if not waiter.widen or waiter.widened or waiter.wanted == ANY_COUNTRY:
            return waiter
        if self._clock() - waiter.joined_at_s < self.rules.widen_after_s:
            return waiter
        return replace(waiter, wanted=ANY_COUNTRY, widened=True)

    # -- proposals -----------------------------------------------------------------------

    def _propose(self, a: Waiter, b: Waiter) -> Proposal:
        first, second = (a, b) if a.order <= b.order else (b, a)
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

    def _abandon(self, call_id: str, is_lost: Callable[[Waiter], bool]) -> None:
        """Close a proposal that lost a side. The other sides wait again at once, at their old places."""
        proposal = self._close_pending(call_id).proposal
        back: list[Waiter] = []
        for waiter in (proposal.first, proposal.second):
            if not is_lost(waiter) and self._gateway_alive(waiter.gateway_id, waiter.boot_id):
                self.index.add(waiter)
                back.append(waiter)
        self._abandoned.append((proposal, tuple(back)))

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
            for side in (pending.proposal.first, pending.proposal.second):
                actions.extend(self._requeue(side))
        return actions

    def _requeue(self, waiter: Waiter) -> list[Action]:
        # Both sides go back, confirmed or not: an unconfirmed side may have lost the `matched`
        # message, and then its gateway still shows it as waiting.
        if not self._gateway_alive(waiter.gateway_id, waiter.boot_id):
            return []
        if waiter.session_id in self.index or waiter.session_id in self._pending_by_session:
            return []
        return self._insert_and_match(self._widened_if_due(waiter))

    def _rematch_abandoned(self) -> list[Action]:
        # Every Requeued comes before the proposals that re-use its sides.
        abandoned = list(self._abandoned)
        self._abandoned.clear()
        actions: list[Action] = [Requeued(proposal) for proposal, _ in abandoned]
        for _, sides in abandoned:
            for waiter in sides:
                queued = self.index.by_session.get(waiter.session_id)
                if queued is None or queued.order != waiter.order:
                    continue
                self.index.remove(waiter.session_id)
                actions.extend(self._requeue(queued))
        return actions

    # -- tick steps ----------------------------------------------------------------------

    def _widen_due_waiters(self) -> list[Action]:
        actions: list[Action] = []
        now = self._clock()
        while self._widen_due:
            due = self._widen_due[0]
            if now - due.joined_at_s < self.rules.widen_after_s:
                break
            self._widen_due.popleft()
            waiter = self.index.by_session.get(due.session_id)
            if waiter is None or waiter.order != due.order or waiter.widened:
                continue
            self.index.remove(waiter.session_id)
            actions.extend(self._insert_and_match(replace(waiter, wanted=ANY_COUNTRY, widened=True)))
        return actions

    def _retry_long_waiters(self) -> list[Action]:
        actions: list[Action] = []
        now = self._clock()
        while self._override_due:
            due = self._override_due[0]
            if now - due.joined_at_s < self.rules.recent_override_after_s:
                break
            self._override_due.popleft()
            waiter = self.index.by_session.get(due.session_id)
            if waiter is None or waiter.order != due.order:
                continue
            self.index.remove(waiter.session_id)
            actions.extend(self._insert_and_match(waiter))
        return actions


def _arrived(waiter: Waiter, order: Order, joined_at_s: float) -> Waiter:
    # Built field by field: `dataclasses.replace` costs several times more on every join.
    return Waiter(
        session_id=waiter.session_id,
        gateway_id=waiter.gateway_id,
        boot_id=waiter.boot_id,
        browser_id=waiter.browser_id,
        country=waiter.country,
        wanted=waiter.wanted,
        ip_key=waiter.ip_key,
        order=order,
        joined_at_s=joined_at_s,
        widen=waiter.widen,
        widened=False,
        recent_sessions=waiter.recent_sessions,
        recent_browsers=waiter.recent_browsers,
        blocked_keys=waiter.blocked_keys,
    )


def _recent(a: Waiter, b: Waiter) -> bool:
    return b.session_id in a.recent_sessions or b.browser_id in a.recent_browsers
