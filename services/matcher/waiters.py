"""Sorted indexes of waiting people, so a join or leave never scans the whole queue."""

from collections.abc import Iterator
from dataclasses import dataclass, field

from sortedcontainers import SortedDict

from shared.events import ANY_COUNTRY

# Queue position: the gateway's wall-clock join time in ms, then the matcher's arrival counter,
# so a session re-submitted after a failover or a lost confirm keeps its place.
Order = tuple[int, int]


@dataclass(slots=True)
class Waiter:
    """One waiting session as the matcher sees it."""

    session_id: str
    gateway_id: str
    boot_id: str
    browser_id: str
    country: str
    wanted: str
    ip_key: str
    order: Order
    joined_at_s: float
    widen: bool = False
    widened: bool = False
    recent_sessions: frozenset[str] = field(default_factory=frozenset)
    recent_browsers: frozenset[str] = field(default_factory=frozenset)
    blocked_keys: frozenset[str] = field(default_factory=frozenset)


def compatible(a: Waiter, b: Waiter) -> bool:
    """Tell whether each side's wanted country accepts the other's own country."""
    a_accepts = a.wanted == ANY_COUNTRY or a.wanted == b.country
    b_accepts = b.wanted == ANY_COUNTRY or b.wanted == a.country
    return a_accepts and b_accepts


class WaiterIndex:
    """Waiting sessions indexed by (country, wanted), by wanted alone, by gateway and by age.

    Every operation is O(log n): the candidates for a newcomer sit at the heads of two sorted
    maps, whatever the number of countries.
    """

    def __init__(self) -> None:
        self.by_session: dict[str, Waiter] = {}
        self.by_gateway: dict[str, set[str]] = {}
        self.by_age: SortedDict = SortedDict()
        self._by_bucket: dict[tuple[str, str], SortedDict] = {}
        self._by_wanted: dict[str, SortedDict] = {}
        self.count_by_country: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.by_session)

    def __contains__(self, session_id: str) -> bool:
        return session_id in self.by_session

    def add(self, waiter: Waiter) -> None:
        self.by_session[waiter.session_id] = waiter
        self.by_gateway.setdefault(waiter.gateway_id, set()).add(waiter.session_id)
        self.by_age[waiter.order] = waiter.session_id
        self._by_bucket.setdefault((waiter.country, waiter.wanted), SortedDict())[waiter.order] = waiter.session_id
        self._by_wanted.setdefault(waiter.wanted, SortedDict())[waiter.order] = waiter.session_id
        self.count_by_country[waiter.country] = self.count_by_country.get(waiter.country, 0) + 1

    def remove(self, session_id: str) -> Waiter | None:
        waiter = self.by_session.pop(session_id, None)
        if waiter is None:
            return None

        gateway_sessions = self.by_gateway[waiter.gateway_id]
        gateway_sessions.discard(session_id)
        if not gateway_sessions:
            del self.by_gateway[waiter.gateway_id]

        del self.by_age[waiter.order]
        _discard(self._by_bucket, (waiter.country, waiter.wanted), waiter.order)
        _discard(self._by_wanted, waiter.wanted, waiter.order)

        self.count_by_country[waiter.country] -= 1
        if not self.count_by_country[waiter.country]:
            del self.count_by_country[waiter.country]
        return waiter

    def candidates(self, newcomer: Waiter) -> Iterator[Waiter]:
        """Yield waiters compatible with `newcomer`, oldest first."""
        if newcomer.wanted == ANY_COUNTRY:
            maps = [self._by_wanted.get(ANY_COUNTRY), self._by_wanted.get(newcomer.country)]
        else:
            maps = [
                self._by_bucket.get((newcomer.wanted, ANY_COUNTRY)),
                self._by_bucket.get((newcomer.wanted, newcomer.country)),
            ]
        present = [sorted_map for sorted_map in maps if sorted_map]
        yield from self._merge_oldest_first(present)

    def _merge_oldest_first(self, maps: list[SortedDict]) -> Iterator[Waiter]:
        # Two maps at most, walked lazily: the first eligible candidate usually sits at a head.
        iterators = [iter(sorted_map.keys()) for sorted_map in maps]
        heads: list[Order | None] = [next(iterator, None) for iterator in iterators]
        while True:
            live = [(head, position) for position, head in enumerate(heads) if head is not None]
            if not live:
                return
            order, position = min(live)
            session_id = maps[position].get(order)
            heads[position] = next(iterators[position], None)
            if session_id is not None and session_id in self.by_session:
                yield self.by_session[session_id]


def _discard(maps: dict, key: object, order: Order) -> None:
    sorted_map = maps.get(key)
    if sorted_map is None:
        return
    sorted_map.pop(order, None)
    if not sorted_map:
        del maps[key]
