"""Example-based tests of the pairing rules, driven through the engine with a fake clock."""

import dataclasses
import itertools
from collections.abc import Iterable

import pytest

from services.matcher.pairing import Action, Pairing, PairingRules, Proposal, Requeued, Started
from services.matcher.waiters import Waiter
from shared.events import ANSWERER, ANY_COUNTRY, OFFERER

RULES = PairingRules(
    confirm_timeout_s=2.0,
    heartbeat_interval_s=1.0,
    missed_heartbeats=3,
    widen_after_s=10.0,
    recent_override_after_s=10.0,
)
SILENCE_LIMIT_S = RULES.heartbeat_interval_s * RULES.missed_heartbeats


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def engine(clock: FakeClock) -> Pairing:
    call_ids = (f"call-{number}" for number in itertools.count(1))
    return Pairing(RULES, clock, new_call_id=lambda: next(call_ids))


def person(
    session_id: str,
    country: str = "DE",
    wanted: str = ANY_COUNTRY,
    *,
    browser_id: str | None = None,
    gateway_id: str = "g1",
    boot_id: str = "boot-g1",
    ip_key: str | None = None,
    widen: bool = False,
    recent_sessions: Iterable[str] = (),
    recent_browsers: Iterable[str] = (),
    blocked_keys: Iterable[str] = (),
) -> Waiter:
    return Waiter(
        session_id=session_id,
        gateway_id=gateway_id,
        boot_id=boot_id,
        browser_id=browser_id or f"browser-{session_id}",
        country=country,
        wanted=wanted,
        ip_key=ip_key or f"key-{session_id}",
        order=(0, 0),
        joined_at_s=0.0,
        widen=widen,
        recent_sessions=frozenset(recent_sessions),
        recent_browsers=frozenset(recent_browsers),
        blocked_keys=frozenset(blocked_keys),
    )


def proposals(actions: list[Action]) -> list[Proposal]:
    return [action for action in actions if isinstance(action, Proposal)]


def pair_of(proposal: Proposal) -> set[str]:
    return {proposal.first.session_id, proposal.second.session_id}


def only_proposal(actions: list[Action]) -> Proposal:
    found = proposals(actions)
    assert len(found) == 1, f"expected one proposal, got {actions!r}"
    return found[0]


def wait_and_tick(engine: Pairing, clock: FakeClock, seconds: float, step_s: float = 0.5) -> list[Action]:
    """Advance the clock in steps, with heartbeats from g1 and g2, ticking after each step."""
    actions: list[Action] = []
    elapsed = 0.0
    while elapsed < seconds - 1e-9:
        step = min(step_s, seconds - elapsed)
        clock.advance(step)
        elapsed += step
        engine.heartbeat("g1", "boot-g1", draining=False)
        engine.heartbeat("g2", "boot-g2", draining=False)
        actions.extend(engine.tick())
    return actions


# -- compatibility ----------------------------------------------------------------------------

# Person A lives in DE and person B in FR. PL is a third country neither lives in.
COMPATIBILITY_CASES = [
    # (A wants, B wants, paired)
    ("any", "any", True),
    ("any", "DE", True),
    ("any", "FR", False),
    ("any", "PL", False),
    ("FR", "any", True),
    ("FR", "DE", True),
    ("FR", "FR", False),
    ("FR", "PL", False),
    ("DE", "any", False),
    ("DE", "DE", False),
    ("DE", "FR", False),
    ("DE", "PL", False),
    ("PL", "any", False),
    ("PL", "DE", False),
    ("PL", "FR", False),
    ("PL", "PL", False),
]


@pytest.mark.parametrize(("a_wants", "b_wants", "paired"), COMPATIBILITY_CASES)
def test_compatibility_of_wanted_countries(engine: Pairing, a_wants: str, b_wants: str, paired: bool) -> None:
    engine.join(person("a", "DE", a_wants))
    actions = engine.join(person("b", "FR", b_wants))

    assert bool(proposals(actions)) is paired


@pytest.mark.parametrize(("a_wants", "b_wants", "paired"), COMPATIBILITY_CASES)
def test_compatibility_is_symmetric(engine: Pairing, a_wants: str, b_wants: str, paired: bool) -> None:
    engine.join(person("b", "FR", b_wants))
    actions = engine.join(person("a", "DE", a_wants))

    assert bool(proposals(actions)) is paired


def test_same_country_wanting_own_country(engine: Pairing) -> None:
    engine.join(person("a", "DE", "DE"))
    actions = engine.join(person("b", "DE", "DE"))

    assert pair_of(only_proposal(actions)) == {"a", "b"}


# -- who may meet -----------------------------------------------------------------------------


def test_repeated_join_is_one_entry(engine: Pairing) -> None:
    first = engine.join(person("a"))
    second = engine.join(person("a"))

    assert first == []
    assert second == []
    assert len(engine.index) == 1


def test_never_paired_with_self(engine: Pairing, clock: FakeClock) -> None:
    engine.join(person("a"))
    engine.join(person("a"))
    actions = wait_and_tick(engine, clock, 30.0)

    assert proposals(actions) == []


def test_same_browser_never_paired(engine: Pairing, clock: FakeClock) -> None:
    engine.join(person("tab-1", browser_id="shared-browser"))
    actions = engine.join(person("tab-2", browser_id="shared-browser", gateway_id="g2", boot_id="boot-g2"))
    actions += wait_and_tick(engine, clock, 30.0)

    assert proposals(actions) == []
    assert len(engine.index) == 2


def test_same_ip_key_is_paired(engine: Pairing) -> None:
    engine.join(person("a", ip_key="carrier-nat"))
    actions = engine.join(person("b", ip_key="carrier-nat"))

    assert pair_of(only_proposal(actions)) == {"a", "b"}


def test_oldest_compatible_first(engine: Pairing) -> None:
    engine.join(person("wants-fr", "DE", "FR"))
    engine.join(person("oldest", "PL", "DE"))
    engine.join(person("younger", "IT", "DE"))
    actions = engine.join(person("newcomer", "DE", ANY_COUNTRY))

    assert pair_of(only_proposal(actions)) == {"oldest", "newcomer"}


def test_oldest_first_across_buckets(engine: Pairing) -> None:
    # The two candidates sit in different index maps: one wants anyone, one wants DE.
    engine.join(person("wants-de", "PL", "DE"))
    engine.join(person("wants-any", "IT", ANY_COUNTRY))
    first = engine.join(person("n1", "DE", ANY_COUNTRY))
    second = engine.join(person("n2", "DE", ANY_COUNTRY))

    assert pair_of(only_proposal(first)) == {"wants-de", "n1"}
    assert pair_of(only_proposal(second)) == {"wants-any", "n2"}


def test_oldest_first_for_specific_wish(engine: Pairing) -> None:
    engine.join(person("fr-wants-de", "FR", "DE"))
    engine.join(person("fr-wants-any", "FR", ANY_COUNTRY))
    first = engine.join(person("n1", "DE", "FR"))
    second = engine.join(person("n2", "DE", "FR"))

    assert pair_of(only_proposal(first)) == {"fr-wants-de", "n1"}
    assert pair_of(only_proposal(second)) == {"fr-wants-any", "n2"}


def test_older_side_is_offerer(engine: Pairing) -> None:
    engine.join(person("older"))
    proposal = only_proposal(engine.join(person("newer")))

    assert proposal.role_of("older") == OFFERER
    assert proposal.role_of("newer") == ANSWERER


# -- widening ---------------------------------------------------------------------------------


def test_widening_after_wait(engine: Pairing, clock: FakeClock) -> None:
    engine.join(person("a", "DE", "FR", widen=True))
    engine.join(person("b", "PL", ANY_COUNTRY))

    before = wait_and_tick(engine, clock, RULES.widen_after_s - 0.5)
    after = wait_and_tick(engine, clock, 0.5)

    assert proposals(before) == []
    proposal = only_proposal(after)
    assert pair_of(proposal) == {"a", "b"}
    assert proposal.first.wanted == ANY_COUNTRY
    assert proposal.first.widened


def test_no_widening_without_opt_in(engine: Pairing, clock: FakeClock) -> None:
    engine.join(person("a", "DE", "FR", widen=False))
    engine.join(person("b", "PL", ANY_COUNTRY))

    actions = wait_and_tick(engine, clock, RULES.widen_after_s * 4)

    assert proposals(actions) == []
    assert engine.index.by_session["a"].wanted == "FR"


def test_widening_keeps_wanted_country_first(engine: Pairing, clock: FakeClock) -> None:
    engine.join(person("a", "DE", "FR", widen=True))
    wait_and_tick(engine, clock, 2.0)
    actions = engine.join(person("b", "FR", ANY_COUNTRY))

    assert pair_of(only_proposal(actions)) == {"a", "b"}
    assert not only_proposal(actions).first.widened


def test_widening_due_during_proposal(engine: Pairing, clock: FakeClock) -> None:
    engine.join(person("a", "DE", "FR", widen=True))
    wait_and_tick(engine, clock, RULES.widen_after_s - 1.0)
    proposal = only_proposal(engine.join(person("b", "FR", "DE", gateway_id="g2", boot_id="boot-g2")))
    engine.join(person("c", "PL", ANY_COUNTRY))

    # The widening falls due while "a" sits in the proposal, which then times out.
    actions = wait_and_tick(engine, clock, RULES.confirm_timeout_s + 0.5)

    assert Requeued(proposal) in actions
    rematch = only_proposal(actions)
    assert pair_of(rematch) == {"a", "c"}
    assert rematch.first.widened


# -- recent partners --------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["session", "browser"])
def test_recent_partner_held_back(engine: Pairing, clock: FakeClock, by: str) -> None:
    recent = {"recent_sessions": ["b"]} if by == "session" else {"recent_browsers": ["browser-b"]}
    engine.join(person("a", **recent))  # type: ignore[arg-type]  # keyword built per case
    actions = engine.join(person("b"))
    actions += wait_and_tick(engine, clock, RULES.recent_override_after_s - 0.5)

    assert proposals(actions) == []


@pytest.mark.parametrize("listed_by", ["older", "newer"])
def test_recent_partner_override_after_both_waited(engine: Pairing, clock: FakeClock, listed_by: str) -> None:
    older_recent = ["b"] if listed_by == "older" else []
    newer_recent = ["a"] if listed_by == "newer" else []
    engine.join(person("a", recent_sessions=older_recent))
    wait_and_tick(engine, clock, 4.0)
    engine.join(person("b", recent_sessions=newer_recent))

    # At 10 s "a" has waited long enough, "b" only 6 s: no pairing yet.
    early = wait_and_tick(engine, clock, RULES.recent_override_after_s - 4.0)
    late = wait_and_tick(engine, clock, 4.0)

    assert proposals(early) == []
    assert pair_of(only_proposal(late)) == {"a", "b"}


def test_fresh_partner_beats_recent_override(engine: Pairing, clock: FakeClock) -> None:
    # "n" may meet "r" (recent, older) or "f" (fresh) only once it widens at 10 s. By then the
    # override would allow "r" as well, but a fresh partner goes first.
    engine.join(person("n", "DE", "FR", widen=True, recent_sessions=["r"]))
    engine.join(person("r", "FR", "DE"))
    engine.join(person("f", "PL", "DE"))

    actions = wait_and_tick(engine, clock, RULES.widen_after_s)

    assert pair_of(only_proposal(actions)) == {"n", "f"}
    assert "r" in engine.index


def test_recent_override_when_no_one_else(engine: Pairing, clock: FakeClock) -> None:
    engine.join(person("n", "DE", "FR", widen=True, recent_sessions=["r"]))
    engine.join(person("r", "FR", "DE"))

    actions = wait_and_tick(engine, clock, RULES.widen_after_s)

    assert pair_of(only_proposal(actions)) == {"n", "r"}


@pytest.mark.parametrize("blocked_by", ["older", "newer"])
def test_blocked_key_never_paired(engine: Pairing, clock: FakeClock, blocked_by: str) -> None:
    older_blocks = ["key-b"] if blocked_by == "older" else []
    newer_blocks = ["key-a"] if blocked_by == "newer" else []
    engine.join(person("a", blocked_keys=older_blocks, recent_sessions=["b"]))
    actions = engine.join(person("b", blocked_keys=newer_blocks))
    actions += wait_and_tick(engine, clock, RULES.recent_override_after_s * 6)

    assert proposals(actions) == []


def test_blocked_key_blocks_everyone_behind_it(engine: Pairing) -> None:
    engine.join(person("reporter", blocked_keys=["shared-nat"]))
    first = engine.join(person("behind-nat-1", ip_key="shared-nat"))
    second = engine.join(person("behind-nat-2", ip_key="shared-nat"))

    assert first == []
    assert pair_of(only_proposal(second)) == {"behind-nat-1", "behind-nat-2"}
    assert "reporter" in engine.index


# -- confirm and requeue ----------------------------------------------------------------------


def test_call_starts_after_both_confirm(engine: Pairing) -> None:
    engine.join(person("a"))
    proposal = only_proposal(engine.join(person("b")))

    first = engine.confirm(proposal.call_id, "a")
    repeated = engine.confirm(proposal.call_id, "a")
    stranger = engine.confirm(proposal.call_id, "someone-else")
    second = engine.confirm(proposal.call_id, "b")

    assert first == []
    assert repeated == []
    assert stranger == []
    assert second == [Started(proposal)]
    assert engine.pending_sessions() == set()


def test_confirm_of_unknown_call_ignored(engine: Pairing) -> None:
    assert engine.confirm("no-such-call", "a") == []


def test_started_call_not_requeued(engine: Pairing, clock: FakeClock) -> None:
    engine.join(person("a"))
    proposal = only_proposal(engine.join(person("b")))
    engine.confirm(proposal.call_id, "a")
    engine.confirm(proposal.call_id, "b")

    actions = wait_and_tick(engine, clock, RULES.confirm_timeout_s * 3)

    assert actions == []
    assert len(engine.index) == 0


def test_timeout_requeues_at_original_position(engine: Pairing, clock: FakeClock) -> None:
    engine.join(person("a", "DE", "FR"))
    proposal = only_proposal(engine.join(person("b", "FR", "DE")))
    engine.join(person("c", "FR", "DE"))
    engine.confirm(proposal.call_id, "a")

    actions = wait_and_tick(engine, clock, RULES.confirm_timeout_s + 0.5)

    assert Requeued(proposal) in actions
    # "a" comes back ahead of "c" and is proposed with it. "b" keeps its place ahead of "d".
    rematch = only_proposal(actions)
    assert pair_of(rematch) == {"a", "c"}
    assert rematch.first.session_id == "a"
    assert engine.index.by_session["b"].order == proposal.second.order
    later = only_proposal(engine.join(person("d", "DE", "FR")))
    assert pair_of(later) == {"b", "d"}
    assert later.first.session_id == "b"


def test_timeout_requeue_pairs_sides_again(engine: Pairing, clock: FakeClock) -> None:
    engine.join(person("a"))
    proposal = only_proposal(engine.join(person("b")))

    actions = wait_and_tick(engine, clock, RULES.confirm_timeout_s + 0.5)

    again = only_proposal(actions)
    assert again.call_id != proposal.call_id
    assert (again.first.session_id, again.second.session_id) == ("a", "b")


def test_timeout_skips_side_of_dead_gateway(engine: Pairing, clock: FakeClock) -> None:
    engine.join(person("a", gateway_id="g1", boot_id="boot-g1"))
    proposal = only_proposal(engine.join(person("b", gateway_id="g2", boot_id="boot-g2")))
    engine.confirm(proposal.call_id, "a")

    engine.heartbeat("g2", "boot-g2-restarted", draining=False)
    actions = wait_and_tick(engine, clock, RULES.confirm_timeout_s + 0.5)

    assert Requeued(proposal) in actions
    assert set(engine.index.by_session) == {"a"}


def test_leave_during_proposal(engine: Pairing) -> None:
    engine.join(person("a"))
    proposal = only_proposal(engine.join(person("b")))
    engine.confirm(proposal.call_id, "a")

    engine.leave("b")

    assert engine.confirm(proposal.call_id, "b") == []
    assert engine.pending_sessions() == set()
    assert engine.index.by_session["a"].order == proposal.first.order
    newcomer = engine.join(person("c"))
    assert pair_of(only_proposal(newcomer)) == {"a", "c"}
    assert engine.tick() == [Requeued(proposal)]


def test_leave_during_proposal_rematches_at_tick(engine: Pairing) -> None:
    engine.join(person("a"))
    proposal = only_proposal(engine.join(person("b")))
    engine.join(person("c"))

    engine.leave("b")
    actions = engine.tick()

    assert Requeued(proposal) in actions
    rematch = only_proposal(actions)
    assert pair_of(rematch) == {"a", "c"}
    assert rematch.first.session_id == "a"


def test_leave_of_both_sides_requeues_nobody(engine: Pairing) -> None:
    engine.join(person("a"))
    proposal = only_proposal(engine.join(person("b")))

    engine.leave("b")
    engine.leave("a")
    actions = engine.tick()

    assert Requeued(proposal) in actions
    assert proposals(actions) == []
    assert len(engine.index) == 0


def test_rejoin_after_leave_during_proposal(engine: Pairing) -> None:
    engine.join(person("a"))
    only_proposal(engine.join(person("b")))

    engine.leave("b")
    actions = engine.join(person("b"))

    assert pair_of(only_proposal(actions)) == {"a", "b"}


def test_leave_while_waiting(engine: Pairing) -> None:
    engine.join(person("a"))
    engine.leave("a")
    actions = engine.join(person("b"))

    assert actions == []
    assert set(engine.index.by_session) == {"b"}


# -- liveness ---------------------------------------------------------------------------------


def test_silent_gateway_entries_never_paired(engine: Pairing, clock: FakeClock) -> None:
    engine.join(person("a", gateway_id="g1", boot_id="boot-g1"))
    clock.advance(SILENCE_LIMIT_S + 0.01)
    engine.heartbeat("g2", "boot-g2", draining=False)

    actions = engine.join(person("b", gateway_id="g2", boot_id="boot-g2"))
    actions += engine.tick()

    assert proposals(actions) == []
    assert set(engine.index.by_session) == {"b"}
    assert engine.dropped_entries == 1


def test_silent_gateway_proposal_closed(clock: FakeClock) -> None:
    # A confirm timeout longer than the silence limit, so only the gateway's death can close it.
    engine = Pairing(dataclasses.replace(RULES, confirm_timeout_s=SILENCE_LIMIT_S * 10), clock)
    engine.join(person("a", gateway_id="g1", boot_id="boot-g1"))
    proposal = only_proposal(engine.join(person("b", gateway_id="g2", boot_id="boot-g2")))
    engine.confirm(proposal.call_id, "a")
    clock.advance(SILENCE_LIMIT_S - 1.0)
    engine.heartbeat("g2", "boot-g2", draining=False)
    clock.advance(1.01)

    actions = engine.tick()

    assert actions == [Requeued(proposal)]
    assert engine.confirm(proposal.call_id, "b") == []
    assert set(engine.index.by_session) == {"b"}


def test_draining_gateway_proposal_closed(engine: Pairing) -> None:
    engine.join(person("a", gateway_id="g1", boot_id="boot-g1"))
    proposal = only_proposal(engine.join(person("b", gateway_id="g2", boot_id="boot-g2")))
    engine.confirm(proposal.call_id, "a")

    engine.heartbeat("g1", "boot-g1", draining=True)

    assert engine.confirm(proposal.call_id, "b") == []
    assert set(engine.index.by_session) == {"b"}
    assert engine.tick() == [Requeued(proposal)]


def test_gateway_silent_under_limit_still_paired(engine: Pairing, clock: FakeClock) -> None:
    engine.join(person("a", gateway_id="g1", boot_id="boot-g1"))
    clock.advance(SILENCE_LIMIT_S - 0.1)

    actions = engine.join(person("b", gateway_id="g2", boot_id="boot-g2"))

    assert pair_of(only_proposal(actions)) == {"a", "b"}


def test_tick_drops_silent_gateway(engine: Pairing, clock: FakeClock) -> None:
    engine.join(person("a", "DE", "FR", gateway_id="g1", boot_id="boot-g1"))
    clock.advance(SILENCE_LIMIT_S + 0.01)

    engine.tick()

    assert len(engine.index) == 0


def test_heartbeats_keep_entries(engine: Pairing, clock: FakeClock) -> None:
    engine.join(person("a", "DE", "FR", gateway_id="g1", boot_id="boot-g1"))

    wait_and_tick(engine, clock, SILENCE_LIMIT_S * 5)

    assert "a" in engine.index


def test_new_boot_id_drops_old_entries(engine: Pairing) -> None:
    engine.join(person("a", gateway_id="g1", boot_id="boot-g1"))

    engine.heartbeat("g1", "boot-g1-restarted", draining=False)
    late_join = engine.join(person("late", gateway_id="g1", boot_id="boot-g1"))
    actions = engine.join(person("b", gateway_id="g2", boot_id="boot-g2"))

    assert late_join == []
    assert actions == []
    assert set(engine.index.by_session) == {"b"}


def test_join_with_new_boot_drops_old_entries(engine: Pairing) -> None:
    engine.join(person("a", "DE", "FR", gateway_id="g1", boot_id="boot-g1"))

    engine.join(person("b", "DE", "FR", gateway_id="g1", boot_id="boot-g1-restarted"))

    assert set(engine.index.by_session) == {"b"}


def test_draining_gateway_entries_go_at_once(engine: Pairing) -> None:
    engine.join(person("a", gateway_id="g1", boot_id="boot-g1"))

    engine.heartbeat("g1", "boot-g1", draining=True)
    actions = engine.join(person("b", gateway_id="g2", boot_id="boot-g2"))

    assert actions == []
    assert set(engine.index.by_session) == {"b"}
