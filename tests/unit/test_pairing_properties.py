"""Stateful property test of the pairing engine against a model of gateways and people.

The model plays the gateways: people join, leave, skip, report, disconnect and confirm, and
gateways heartbeat, die, restart and drain while a fake clock moves. After every step the
engine's queue and proposals must agree with the model, and every pairing must follow the
rules, which this file restates independently of the engine's own code.
"""

import itertools
from dataclasses import dataclass, field

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from services.matcher.pairing import Action, Pairing, PairingRules, Proposal, Requeued, Started
from services.matcher.waiters import Waiter

ANY = "any"
# Times are short against the clock steps below, so short runs still reach every timeout.
RULES = PairingRules(
    confirm_timeout_s=0.5,
    heartbeat_interval_s=0.25,
    missed_heartbeats=3,
    widen_after_s=1.0,
    recent_override_after_s=1.5,
)
SILENCE_LIMIT_S = RULES.heartbeat_interval_s * RULES.missed_heartbeats
RECENT_PARTNERS = 5
GATEWAYS = ("g0", "g1")
# (browser id, own country, ip_key): three keys for five browsers, as behind a shared NAT.
BROWSERS = (
    ("browser-0", "DE", "key-0"),
    ("browser-1", "DE", "key-1"),
    ("browser-2", "FR", "key-2"),
    ("browser-3", "FR", "key-0"),
    ("browser-4", "PL", "key-1"),
)
WANTED = (ANY, ANY, "DE", "FR", "PL")
MAX_LIVE_SESSIONS = 12
JOIN_PARAMS = st.tuples(
    st.integers(0, len(BROWSERS) - 1), st.sampled_from(GATEWAYS), st.sampled_from(WANTED), st.booleans()
)
CLOCK_STEPS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)

# Rank of a pair, as in the engine: the oldest candidate of the best rank goes first.
NEVER, RECENT_OVERRIDE, FRESH = 0, 1, 2


@dataclass
class Person:
    """One session, as its gateway tracks it."""

    session_id: str
    browser_id: str
    country: str
    ip_key: str
    gateway_id: str
    boot_id: str
    state: str = "idle"  # idle, waiting, proposed, in_call or gone
    gone_reason: str = ""  # left, gateway_died, gateway_restarted or drained
    wanted: str = ANY
    widen: bool = False
    joined_at_s: float = 0.0
    call_id: str = ""
    confirmed_call: str = ""
    partner: str = ""
    recent: list[tuple[str, str]] = field(default_factory=list)
    blocked: set[str] = field(default_factory=set)


@dataclass
class GatewayModel:
    gateway_id: str
    boot: int = 0
    alive: bool = True
    drained: bool = False
    last_seen_s: float = 0.0

    @property
    def boot_id(self) -> str:
        return f"{self.gateway_id}-boot{self.boot}"


def accepts(wanted: str, country: str) -> bool:
    return wanted in (ANY, country)


def is_recent(a: Waiter, b: Waiter) -> bool:
    return b.session_id in a.recent_sessions or b.browser_id in a.recent_browsers


def rank(a: Waiter, b: Waiter, now_s: float) -> int:
    if a.session_id == b.session_id or a.browser_id == b.browser_id:
        return NEVER
    if a.ip_key in b.blocked_keys or b.ip_key in a.blocked_keys:
        return NEVER
    if not (accepts(a.wanted, b.country) and accepts(b.wanted, a.country)):
        return NEVER
    if not is_recent(a, b) and not is_recent(b, a):
        return FRESH
    both_waited_long = min(now_s - a.joined_at_s, now_s - b.joined_at_s) >= RULES.recent_override_after_s
    return RECENT_OVERRIDE if both_waited_long else NEVER


def beats(newcomer: Waiter, candidate: Waiter, chosen: Waiter, now_s: float) -> bool:
    """Tell whether `candidate` should have been chosen for `newcomer` before `chosen`."""
    candidate_rank = rank(newcomer, candidate, now_s)
    chosen_rank = rank(newcomer, chosen, now_s)
    if candidate_rank == NEVER:
        return False
    return candidate_rank > chosen_rank or (candidate_rank == chosen_rank and candidate.order < chosen.order)


class PairingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now_s = 1000.0
        call_numbers = itertools.count(1)
        self.engine = Pairing(RULES, lambda: self.now_s, new_call_id=lambda: f"call-{next(call_numbers)}")
        self.gateways = {gateway_id: GatewayModel(gateway_id, last_seen_s=self.now_s) for gateway_id in GATEWAYS}
        for gateway in self.gateways.values():
            self.engine.heartbeat(gateway.gateway_id, gateway.boot_id, draining=False)
        self.people: dict[str, Person] = {}
        self.session_numbers = itertools.count(1)
        self.closed_calls: list[str] = []
        self.open_calls: dict[str, Proposal] = {}
        self.requeued_orders: dict[str, tuple[int, int]] = {}

    # -- helpers --------------------------------------------------------------------------

    def in_state(self, *states: str) -> list[Person]:
        return [person for person in self.people.values() if person.state in states]

    def engine_sees_alive(self, gateway_id: str, boot_id: str) -> bool:
        gateway = self.gateways[gateway_id]
        if gateway.drained or gateway.boot_id != boot_id:
            return False
        return self.now_s - gateway.last_seen_s <= SILENCE_LIMIT_S

    def waiter_for(self, person: Person) -> Waiter:
        return Waiter(
            session_id=person.session_id,
            gateway_id=person.gateway_id,
            boot_id=person.boot_id,
            browser_id=person.browser_id,
            country=person.country,
            wanted=person.wanted,
            ip_key=person.ip_key,
            order=(0, 0),
            joined_at_s=0.0,
            widen=person.widen,
            recent_sessions=frozenset(session for session, _ in person.recent),
            recent_browsers=frozenset(browser for _, browser in person.recent),
            blocked_keys=frozenset(person.blocked),
        )

    def submit_join(self, person: Person, wanted: str, widen: bool) -> None:
        person.wanted = wanted
        person.widen = widen
        person.joined_at_s = self.now_s
        person.state = "waiting"
        self.gateways[person.gateway_id].last_seen_s = self.now_s
        snapshot = list(self.engine.index.by_session.values())

        waiter = self.waiter_for(person)
        actions = self.engine.join(waiter)

        self.check_join_choice(waiter, snapshot, actions)
        self.apply(actions)

    def end_call(self, person: Person, partner: Person) -> None:
        for side, other in ((person, partner), (partner, person)):
            side.recent = [*side.recent, (other.session_id, other.browser_id)][-RECENT_PARTNERS:]
            side.state = "idle"
            side.call_id = ""
            side.partner = ""

    def remove_person(self, person: Person, reason: str) -> None:
        """Take a person out as its gateway would: a call ends, a proposal's other side goes back.

        The engine learns of a dead gateway's people only when the gateway restarts or falls
        silent, so their proposals stay open until then.
        """
        if person.state == "in_call":
            self.end_call(person, self.people[person.partner])
        elif person.state == "proposed" and reason != "gateway_died":
            self.release_partner(person)
        person.state = "gone"
        person.gone_reason = reason

    def release_partner(self, person: Person) -> None:
        partner = self.people.get(person.partner)
        if partner is not None and partner.state == "proposed" and partner.call_id == person.call_id:
            partner.state = "waiting"

    # -- actions --------------------------------------------------------------------------

    def apply(self, actions: list[Action]) -> None:
        self.requeued_orders.clear()
        for action in actions:
            if isinstance(action, Proposal):
                self.apply_proposal(action)
            elif isinstance(action, Started):
                self.apply_started(action)
            elif isinstance(action, Requeued):
                self.apply_requeued(action)
        for session_id, order in self.requeued_orders.items():
            queued = self.engine.index.by_session.get(session_id)
            if queued is not None:
                assert queued.order == order, f"{session_id} lost its place in the queue"

    def apply_proposal(self, proposal: Proposal) -> None:
        self.check_proposal(proposal)
        self.open_calls[proposal.call_id] = proposal
        for side, other in ((proposal.first, proposal.second), (proposal.second, proposal.first)):
            person = self.people[side.session_id]
            self.requeued_orders.pop(side.session_id, None)
            person.call_id = proposal.call_id
            person.partner = other.session_id
            if person.state != "gone":
                person.state = "proposed"

    def apply_started(self, started: Started) -> None:
        proposal = started.proposal
        sides = [self.people[side.session_id] for side in (proposal.first, proposal.second)]
        for person in sides:
            assert person.call_id == proposal.call_id
            assert person.confirmed_call == proposal.call_id, f"call started without {person.session_id}'s confirm"
            if person.state == "gone":
                # It confirmed, then its gateway died before the engine noticed: a race no engine can see.
                reason = person.gone_reason
                assert reason == "gateway_died", f"call started for {person.session_id} after {reason}"
            else:
                assert person.state == "proposed", f"call started for {person.session_id} in state {person.state}"
        both_live = all(person.state == "proposed" for person in sides)
        for person in sides:
            if person.state == "proposed":
                person.state = "in_call" if both_live else "idle"
        self.open_calls.pop(proposal.call_id)
        self.closed_calls.append(proposal.call_id)

    def apply_requeued(self, requeued: Requeued) -> None:
        proposal = requeued.proposal
        self.open_calls.pop(proposal.call_id, None)
        self.closed_calls.append(proposal.call_id)
        for side in (proposal.first, proposal.second):
            person = self.people[side.session_id]
            if person.state == "proposed" and person.call_id == proposal.call_id:
                person.state = "waiting"
                self.requeued_orders[side.session_id] = side.order

    # -- checks ---------------------------------------------------------------------------

    def check_proposal(self, proposal: Proposal) -> None:
        a, b = proposal.first, proposal.second
        assert a.session_id != b.session_id, "paired with itself"
        assert a.browser_id != b.browser_id, "paired with another tab of the same browser"
        assert a.order < b.order, "the offerer must be the older waiter"
        assert a.ip_key not in b.blocked_keys, "paired with a blocked key"
        assert b.ip_key not in a.blocked_keys, "paired with a blocked key"
        assert accepts(a.wanted, b.country), "pair is not compatible"
        assert accepts(b.wanted, a.country), "pair is not compatible"

        for side in (a, b):
            person = self.people[side.session_id]
            waited_s = self.now_s - person.joined_at_s
            assert side.joined_at_s == person.joined_at_s
            assert person.state in ("waiting", "gone"), f"{side.session_id} proposed while {person.state}"
            if person.state == "gone":
                assert person.gone_reason == "gateway_died", f"{side.session_id} proposed after {person.gone_reason}"
            assert self.engine_sees_alive(side.gateway_id, side.boot_id), f"{side.session_id}: gateway is dead"
            if side.wanted != person.wanted:
                assert person.widen, f"{side.session_id} widened without opting in"
                assert side.wanted == ANY
                assert waited_s >= RULES.widen_after_s, f"{side.session_id} widened after {waited_s} s"

        if is_recent(a, b) or is_recent(b, a):
            assert rank(a, b, self.now_s) == RECENT_OVERRIDE, "recent partners paired too early"

    def check_join_choice(self, newcomer: Waiter, snapshot: list[Waiter], actions: list[Action]) -> None:
        live = [w for w in snapshot if self.engine_sees_alive(w.gateway_id, w.boot_id)]
        fresh = sorted((w for w in live if rank(newcomer, w, self.now_s) == FRESH), key=lambda w: w.order)
        found = [action for action in actions if isinstance(action, Proposal)]
        if not fresh:
            assert found == [], f"{newcomer.session_id} paired though nobody eligible waited"
            return
        assert len(found) == 1, f"{newcomer.session_id} not paired though {fresh[0].session_id} waited"
        proposal = found[0]
        partner = proposal.first if proposal.second.session_id == newcomer.session_id else proposal.second
        assert partner.session_id == fresh[0].session_id, "the oldest eligible waiter was skipped"

    def check_tick_choices(self, before: dict[str, Waiter], actions: list[Action]) -> None:
        # Entries equal before and after the tick sat in the queue the whole time, so each
        # proposal's newcomer (either side) must not have passed over one that beats its partner.
        after = self.engine.index.by_session
        stayed = [waiter for session_id, waiter in before.items() if after.get(session_id) == waiter]
        for proposal in (action for action in actions if isinstance(action, Proposal)):
            orientations = ((proposal.first, proposal.second), (proposal.second, proposal.first))
            fair = [
                not any(beats(newcomer, other, partner, self.now_s) for other in stayed)
                for newcomer, partner in orientations
            ]
            assert any(fair), f"{proposal.call_id} skipped an older eligible waiter"

    # -- rules: people --------------------------------------------------------------------

    def join_new_session(self, browser: int, gateway: str, wanted: str, widen: bool) -> None:
        gateway_model = self.gateways[gateway]
        if not gateway_model.alive:
            return
        browser_id, country, ip_key = BROWSERS[browser]
        session_id = f"s{next(self.session_numbers)}"
        person = Person(session_id, browser_id, country, ip_key, gateway, gateway_model.boot_id)
        self.people[session_id] = person
        self.submit_join(person, wanted, widen)

    @initialize(crowd=st.lists(JOIN_PARAMS, min_size=2, max_size=8))
    def join_crowd(self, crowd: list[tuple[int, str, str, bool]]) -> None:
        for browser, gateway, wanted, widen in crowd:
            self.join_new_session(browser, gateway, wanted, widen)

    @precondition(lambda self: len(self.in_state("idle", "waiting", "proposed", "in_call")) < MAX_LIVE_SESSIONS)
    @rule(params=JOIN_PARAMS)
    def join_new(self, params: tuple[int, str, str, bool]) -> None:
        self.join_new_session(*params)

    @precondition(lambda self: bool(self.in_state("idle")))
    @rule(pick=st.integers(0, 10_000), wanted=st.sampled_from(WANTED), widen=st.booleans())
    def rejoin(self, pick: int, wanted: str, widen: bool) -> None:
        idle = self.in_state("idle")
        self.submit_join(idle[pick % len(idle)], wanted, widen)

    @precondition(lambda self: bool(self.in_state("idle")))
    @rule(pick=st.integers(0, 10_000), params=JOIN_PARAMS)
    def reload_page(self, pick: int, params: tuple[int, str, str, bool]) -> None:
        # A new session of the same browser: the old session's recent partners went with it.
        idle = self.in_state("idle")
        person = idle[pick % len(idle)]
        self.remove_person(person, "left")
        browser = next(index for index, row in enumerate(BROWSERS) if row[0] == person.browser_id)
        _, gateway, wanted, widen = params
        self.join_new_session(browser, gateway, wanted, widen)

    @precondition(lambda self: bool(self.in_state("waiting")))
    @rule(pick=st.integers(0, 10_000))
    def repeat_join(self, pick: int) -> None:
        waiting = self.in_state("waiting")
        person = waiting[pick % len(waiting)]
        before = len(self.engine.index)

        actions = self.engine.join(self.waiter_for(person))

        assert actions == []
        assert len(self.engine.index) == before

    @precondition(lambda self: bool(self.in_state("waiting", "proposed")))
    @rule(pick=st.integers(0, 10_000), disconnect=st.booleans())
    def leave(self, pick: int, disconnect: bool) -> None:
        people = self.in_state("waiting", "proposed")
        person = people[pick % len(people)]
        self.engine.leave(person.session_id)
        self.remove_person(person, "left")
        if not disconnect:
            person.state = "idle"
            person.gone_reason = ""

    @precondition(lambda self: bool(self.in_state("in_call")))
    @rule(pick=st.integers(0, 10_000))
    def disconnect_in_call(self, pick: int) -> None:
        in_call = self.in_state("in_call")
        self.remove_person(in_call[pick % len(in_call)], "left")

    @precondition(lambda self: bool(self.in_state("proposed")))
    @rule(pick=st.integers(0, 10_000))
    def confirm(self, pick: int) -> None:
        proposed = self.in_state("proposed")
        person = proposed[pick % len(proposed)]
        person.confirmed_call = person.call_id
        self.apply(self.engine.confirm(person.call_id, person.session_id))

    @precondition(lambda self: bool(self.in_state("proposed")))
    @rule(pick=st.integers(0, 10_000))
    def confirm_both_sides(self, pick: int) -> None:
        proposed = self.in_state("proposed")
        person = proposed[pick % len(proposed)]
        partner = self.people[person.partner]
        person.confirmed_call = person.call_id
        actions = self.engine.confirm(person.call_id, person.session_id)
        if partner.state == "proposed" and partner.call_id == person.call_id:
            partner.confirmed_call = partner.call_id
            actions += self.engine.confirm(partner.call_id, partner.session_id)
        self.apply(actions)

    @precondition(lambda self: bool(self.open_calls))
    @rule(call=st.integers(0, 10_000), pick=st.integers(0, 10_000))
    def confirm_by_stranger(self, call: int, pick: int) -> None:
        call_ids = sorted(self.open_calls)
        proposal = self.open_calls[call_ids[call % len(call_ids)]]
        sides = {proposal.first.session_id, proposal.second.session_id}
        strangers = [session_id for session_id in self.people if session_id not in sides]
        if not strangers:
            return

        assert self.engine.confirm(proposal.call_id, strangers[pick % len(strangers)]) == []

    @precondition(lambda self: bool(self.closed_calls) and bool(self.people))
    @rule(call=st.integers(0, 10_000), pick=st.integers(0, 10_000))
    def confirm_closed_call(self, call: int, pick: int) -> None:
        call_id = self.closed_calls[call % len(self.closed_calls)]
        session_ids = list(self.people)

        actions = self.engine.confirm(call_id, session_ids[pick % len(session_ids)])

        assert actions == []

    @precondition(lambda self: bool(self.in_state("in_call")))
    @rule(pick=st.integers(0, 10_000), report=st.booleans(),
          rejoin=st.sampled_from(("both", "both", "skipper", "none")), wanted=st.sampled_from(WANTED))
    def skip(self, pick: int, report: bool, rejoin: str, wanted: str) -> None:
        in_call = self.in_state("in_call")
        person = in_call[pick % len(in_call)]
        partner = self.people[person.partner]
        if report:
            person.blocked.add(partner.ip_key)
        self.end_call(person, partner)
        if rejoin in ("skipper", "both"):
            self.submit_join(person, wanted, widen=False)
        if rejoin == "both":
            self.submit_join(partner, partner.wanted, partner.widen)

    @precondition(lambda self: bool(self.in_state("in_call")))
    @rule(pick=st.integers(0, 10_000), same_wish=st.booleans())
    def skip_both_rejoin_and_wait(self, pick: int, same_wish: bool) -> None:
        # The two-person pool: both press skip and wait out the recent-partner override.
        in_call = self.in_state("in_call")
        person = in_call[pick % len(in_call)]
        partner = self.people[person.partner]
        self.end_call(person, partner)
        self.submit_join(person, person.wanted if same_wish else ANY, widen=False)
        self.submit_join(partner, partner.wanted if same_wish else ANY, widen=False)
        for _ in range(4):
            self.advance_and_tick(RULES.recent_override_after_s / 3)

    # -- rules: gateways and time ---------------------------------------------------------

    @precondition(lambda self: any(person.gone_reason == "gateway_restarted" for person in self.people.values()))
    @rule(pick=st.integers(0, 10_000))
    def late_messages_from_old_boot(self, pick: int) -> None:
        stale = [person for person in self.people.values() if person.gone_reason == "gateway_restarted"]
        person = stale[pick % len(stale)]
        queued = dict(self.engine.index.by_session)

        self.engine.heartbeat(person.gateway_id, person.boot_id, draining=False)
        actions = self.engine.join(self.waiter_for(person))

        assert actions == []
        assert self.engine.index.by_session == queued

    @rule(gateway=st.sampled_from(GATEWAYS))
    def kill_gateway(self, gateway: str) -> None:
        model = self.gateways[gateway]
        if not model.alive:
            return
        model.alive = False
        for person in self.in_state("idle", "waiting", "proposed", "in_call"):
            if person.gateway_id == gateway:
                self.remove_person(person, "gateway_died")

    @rule(gateway=st.sampled_from(GATEWAYS))
    def restart_gateway(self, gateway: str) -> None:
        model = self.gateways[gateway]
        if model.alive:
            return
        for person in self.in_state("gone"):
            if person.gateway_id == gateway and person.gone_reason == "gateway_died":
                person.gone_reason = "gateway_restarted"
                self.release_partner(person)
        model.boot += 1
        model.alive = True
        model.drained = False
        model.last_seen_s = self.now_s
        self.engine.heartbeat(gateway, model.boot_id, draining=False)

    @rule(gateway=st.sampled_from(GATEWAYS))
    def drain_gateway(self, gateway: str) -> None:
        model = self.gateways[gateway]
        if not model.alive:
            return
        self.engine.heartbeat(gateway, model.boot_id, draining=True)
        model.alive = False
        model.drained = True
        for person in self.in_state("idle", "waiting", "proposed", "in_call", "gone"):
            if person.gateway_id == gateway and person.state != "gone":
                self.remove_person(person, "drained")
            elif person.gateway_id == gateway and person.gone_reason == "gateway_died":
                person.gone_reason = "drained"

    @rule(seconds=st.sampled_from(CLOCK_STEPS_S))
    def advance_clock(self, seconds: float) -> None:
        self.now_s += seconds
        for model in self.gateways.values():
            if model.alive:
                model.last_seen_s = self.now_s
                self.engine.heartbeat(model.gateway_id, model.boot_id, draining=False)

    @rule()
    def tick(self) -> None:
        before = dict(self.engine.index.by_session)

        actions = self.engine.tick()

        self.check_tick_choices(before, actions)
        self.apply(actions)
        self.check_nobody_starves()
        self.check_queue_is_live()

    @rule(seconds=st.sampled_from(CLOCK_STEPS_S))
    def advance_and_tick(self, seconds: float) -> None:
        self.advance_clock(seconds)
        self.tick()

    def check_queue_is_live(self) -> None:
        for waiter in self.engine.index.by_session.values():
            assert self.engine_sees_alive(waiter.gateway_id, waiter.boot_id), f"{waiter.session_id}: gateway is dead"
        for session_id in self.engine.pending_sessions():
            person = self.people[session_id]
            assert self.engine_sees_alive(person.gateway_id, person.boot_id), f"{session_id}: proposal kept open"

    def check_nobody_starves(self) -> None:
        waiting = list(self.engine.index.by_session.values())
        for a, b in itertools.combinations(waiting, 2):
            assert rank(a, b, self.now_s) == NEVER, f"{a.session_id} and {b.session_id} both wait though eligible"

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def queue_and_proposals_are_disjoint(self) -> None:
        queued = set(self.engine.index.by_session)
        assert not queued & self.engine.pending_sessions()

    @invariant()
    def queue_matches_gateways(self) -> None:
        for session_id, waiter in self.engine.index.by_session.items():
            person = self.people[session_id]
            assert person.state in ("waiting", "gone"), f"{session_id} queued while {person.state}"
            if person.state == "gone":
                assert person.gone_reason == "gateway_died", f"{session_id} still queued after {person.gone_reason}"
            assert waiter.joined_at_s == person.joined_at_s
        for person in self.in_state("waiting"):
            assert person.session_id in self.engine.index, f"{person.session_id} waits but is not queued"

    @invariant()
    def proposals_match_gateways(self) -> None:
        pending = self.engine.pending_sessions()
        for person in self.in_state("proposed"):
            assert person.session_id in pending, f"{person.session_id} lost its proposal"
        for session_id in pending:
            person = self.people[session_id]
            assert person.state in ("proposed", "gone"), f"{session_id} in a proposal while {person.state}"

    @invariant()
    def nobody_in_two_calls(self) -> None:
        in_call = self.in_state("in_call")
        calls = [person.call_id for person in in_call]
        for call_id in set(calls):
            assert calls.count(call_id) == 2, f"{call_id} has {calls.count(call_id)} sides"
        for person in in_call:
            assert person.session_id not in self.engine.index
            assert person.session_id not in self.engine.pending_sessions()


# A passing run takes about 30 s. A failing one shrinks its example for minutes, hence the timeout.
pytestmark = pytest.mark.timeout(900)

PairingMachine.TestCase.settings = settings(
    max_examples=1000,
    stateful_step_count=80,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_pairing_machine = PairingMachine.TestCase
