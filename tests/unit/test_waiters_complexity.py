"""Join, leave and tick costs of the pairing engine, counted in index operations, not timed.

A scan of the queue would read every waiting entry per join. These tests grow the queue and
the number of countries a hundredfold and check that the counts stay flat.
"""

from collections.abc import Iterator

import pytest
from sortedcontainers import SortedDict

from services.matcher import waiters
from services.matcher.pairing import Pairing, PairingRules, Proposal
from services.matcher.waiters import Waiter
from shared.events import ANY_COUNTRY

RULES = PairingRules(widen_after_s=10.0, recent_override_after_s=10.0)
QUEUE_SIZES = (100, 1_000, 10_000)
COUNTRY_COUNTS = (3, 30, 300)


class CountingSortedDict(SortedDict):
    """A SortedDict that counts the writes made to every instance."""

    writes = 0

    def __setitem__(self, key: object, value: object) -> None:
        CountingSortedDict.writes += 1
        super().__setitem__(key, value)

    def pop(self, key: object, default: object = None) -> object:
        CountingSortedDict.writes += 1
        return super().pop(key, default)


@pytest.fixture(autouse=True)
def counting_maps(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(waiters, "SortedDict", CountingSortedDict)
    CountingSortedDict.writes = 0
    yield


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def person(
    session_id: str, country: str, wanted: str, ip_key: str = "", blocked_keys: frozenset[str] = frozenset()
) -> Waiter:
    return Waiter(
        session_id=session_id,
        gateway_id="g1",
        boot_id="boot-g1",
        browser_id=f"browser-{session_id}",
        country=country,
        wanted=wanted,
        ip_key=ip_key or f"key-{session_id}",
        order=(0, 0),
        joined_at_s=0.0,
        blocked_keys=blocked_keys,
    )


def engine_with(queue: list[Waiter], clock: FakeClock | None = None) -> Pairing:
    engine = Pairing(RULES, clock or FakeClock())
    for waiter in queue:
        assert engine.join(waiter) == []
    assert len(engine.index) == len(queue)
    return engine


def one_way_queue(size: int) -> list[Waiter]:
    """People from DE who want FR: nobody among them is compatible with another."""
    return [person(f"de-{number}", "DE", "FR") for number in range(size)]


def ring_queue(size: int, countries: int) -> list[Waiter]:
    """People from country i who want country i+1: no two of them accept each other."""
    return [person(f"c-{number}", f"C{number % countries}", f"C{(number + 1) % countries}") for number in range(size)]


@pytest.mark.parametrize("size", QUEUE_SIZES)
def test_join_visits_one_candidate(size: int) -> None:
    engine = engine_with(one_way_queue(size))
    visited_before = engine.index.visited
    writes_before = CountingSortedDict.writes

    actions = [engine.join(person(f"fr-{number}", "FR", ANY_COUNTRY)) for number in range(50)]

    assert all(isinstance(action[0], Proposal) for action in actions)
    assert engine.index.visited - visited_before == 50
    # Each pairing removes the partner from its two maps and inserts nothing.
    assert CountingSortedDict.writes - writes_before == 50 * 2


@pytest.mark.parametrize("size", QUEUE_SIZES)
def test_unmatched_join_costs_constant(size: int) -> None:
    engine = engine_with(one_way_queue(size))
    visited_before = engine.index.visited
    writes_before = CountingSortedDict.writes

    for number in range(50):
        assert engine.join(person(f"pl-{number}", "PL", "IT")) == []

    assert engine.index.visited - visited_before == 0
    assert CountingSortedDict.writes - writes_before == 50 * 2


@pytest.mark.parametrize("countries", COUNTRY_COUNTS)
def test_join_cost_ignores_country_count(countries: int) -> None:
    engine = engine_with(ring_queue(3_000, countries))
    visited_before = engine.index.visited

    stranger = engine.join(person("stranger", "XX", ANY_COUNTRY))
    neighbour = engine.join(person("neighbour", "C1", "C0"))

    assert stranger == []
    assert isinstance(neighbour[0], Proposal)
    # The stranger reads no candidate. The neighbour reads the head of the C0 bucket.
    assert engine.index.visited - visited_before == 1


@pytest.mark.parametrize("size", QUEUE_SIZES)
def test_leave_costs_constant(size: int) -> None:
    engine = engine_with(one_way_queue(size))
    visited_before = engine.index.visited
    writes_before = CountingSortedDict.writes

    for number in range(0, size, size // 50):
        engine.leave(f"de-{number}")

    assert len(engine.index) == size - 50
    assert engine.index.visited - visited_before == 0
    assert CountingSortedDict.writes - writes_before == 50 * 2


@pytest.mark.parametrize("size", QUEUE_SIZES)
def test_tick_reads_nothing_before_due(size: int) -> None:
    clock = FakeClock()
    engine = engine_with(one_way_queue(size), clock)
    visited_before = engine.index.visited
    writes_before = CountingSortedDict.writes

    for _ in range(20):
        clock.now_s += 0.1
        engine.heartbeat("g1", "boot-g1", draining=False)
        assert engine.tick() == []

    assert engine.index.visited - visited_before == 0
    assert CountingSortedDict.writes - writes_before == 0


def test_due_retry_costs_constant_per_waiter() -> None:
    # Each waiter is retried once when its wait crosses the override time: the cost is per due
    # waiter, and this queue has no candidates for anyone, so no candidate is read at all.
    clock = FakeClock()
    engine = engine_with(one_way_queue(1_000), clock)
    writes_before = CountingSortedDict.writes

    clock.now_s = RULES.recent_override_after_s
    engine.heartbeat("g1", "boot-g1", draining=False)
    engine.tick()

    assert CountingSortedDict.writes - writes_before == 1_000 * 4


def test_walk_passes_only_excluded_candidates() -> None:
    # The walk is not O(1) in every case: it reads past people the newcomer may not meet, here
    # everyone behind a blocked shared address, and stops at the first one it may meet.
    blocked = [person(f"nat-{number}", "DE", "FR", ip_key="shared-nat") for number in range(200)]
    queue = [*blocked, *one_way_queue(1_000)]
    engine = engine_with(queue)
    visited_before = engine.index.visited

    actions = engine.join(person("reporter", "FR", ANY_COUNTRY, blocked_keys=frozenset({"shared-nat"})))

    assert isinstance(actions[0], Proposal)
    assert actions[0].first.session_id == "de-0"
    assert engine.index.visited - visited_before == len(blocked) + 1

