"""Sorted indexes of waiting people, so a join or leave never scans the whole queue."""

from collections.abc import Iterator
from dataclasses import dataclass, field

from sortedcontainers import SortedDict

from shared.events import ANY_COUNTRY

# Queue position: the gateway's wall-clock join time in microseconds, then the matcher's arrival
# counter, so a session re-submitted after a failover or a lost confirm keeps its place.
# Milliseconds were too coarse: two local joins often share one.
Order = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Waiter:
    """One waiting session in the matcher's view. `wanted` is `any` once the search widened."""

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
    """Waiting sessions indexed by (country, wanted), by wanted alone and by gateway.

    `add` and `remove` are O(log n). The waiters compatible with a newcomer sit in at most two
    sorted maps, whatever the number of countries, so `candidates` reads only the heads it needs.
    `visited` counts the entries that `candidates` has read, for tests and benchmarks.
    """

    def __init__(self) -> None:
        self.by_session: dict[str, Waiter] = {}
        self.by_gateway: dict[str, set[str]] = {}
        self._by_bucket: dict[tuple[str, str], SortedDict] = {}
        self._by_wanted: dict[str, SortedDict] = {}
        self.count_by_country: dict[str, int] = {}
        self.visited = 0

    def __len__(self) -> int:
        return len(self.by_session)

    def __contains__(self, session_id: str) -> bool:
        return session_id in self.by_session

    def add(self, waiter: Waiter) -> None:
        self.by_session[waiter.session_id] = waiter
        _sessions_of(self.by_gateway, waiter.gateway_id).add(waiter.session_id)
        _map_of(self._by_bucket, (waiter.country, waiter.wanted))[waiter.order] = waiter
        _map_of(self._by_wanted, waiter.wanted)[waiter.order] = waiter
        self.count_by_country[waiter.country] = self.count_by_country.get(waiter.country, 0) + 1

    def remove(self, session_id: str) -> Waiter | None:
        waiter = self.by_session.pop(session_id, None)
        if waiter is None:
            return None

        gateway_sessions = self.by_gateway[waiter.gateway_id]
        gateway_sessions.discard(session_id)
        if not gateway_sessions:
            del self.by_gateway[waiter.gateway_id]

        _discard(self._by_bucket, (waiter.country, waiter.wanted), waiter.order)
        _discard(self._by_wanted, waiter.wanted, waiter.order)

        self.count_by_country[waiter.country] -= 1
        if not self.count_by_country[waiter.country]:
            del self.count_by_country[waiter.country]
        return waiter

    def candidates(self, newcomer: Waiter) -> Iterator[Waiter]:
        """Yield the waiters compatible with `newcomer`, oldest first.

        The caller must not add or remove entries while it iterates.
        """
        if newcomer.wanted == ANY_COUNTRY:
            # Everyone who accepts the newcomer's country: people who want anyone, or want it.
            first = self._by_wanted.get(ANY_COUNTRY)
            second = self._by_wanted.get(newcomer.country)
        else:
            # People from the wanted country who accept the newcomer's country.
            first = self._by_bucket.get((newcomer.wanted, ANY_COUNTRY))
            second = self._by_bucket.get((newcomer.wanted, newcomer.country))
        if second is first:
            second = None
        if first is None or second is None:
            return self._walk(first if second is None else second)
        return self._merge_oldest_first(first, second)

    def _walk(self, sorted_map: SortedDict | None) -> Iterator[Waiter]:
        if sorted_map is None:
            return
        for order in sorted_map:
            self.visited += 1
            yield sorted_map[order]

    def _merge_oldest_first(self, first: SortedDict, second: SortedDict) -> Iterator[Waiter]:
        # Read lazily: the first eligible candidate usually sits at one of the two heads.
        first_orders, second_orders = iter(first), iter(second)
        first_head, second_head = next(first_orders, None), next(second_orders, None)
        while first_head is not None or second_head is not None:
            self.visited += 1
            if second_head is None or (first_head is not None and first_head < second_head):
                yield first[first_head]
                first_head = next(first_orders, None)
            else:
                yield second[second_head]
                second_head = next(second_orders, None)


def _sessions_of(maps: dict[str, set[str]], key: str) -> set[str]:
    sessions = maps.get(key)
    if sessions is None:
        sessions = maps[key] = set()
    return sessions


def _map_of(maps: dict, key: object) -> SortedDict:
    # Not `setdefault(key, SortedDict())`: that builds a new SortedDict on every call.
    sorted_map = maps.get(key)
    if sorted_map is None:
        sorted_map = maps[key] = SortedDict()
    return sorted_map


def _discard(maps: dict, key: object, order: Order) -> None:
    sorted_map = maps.get(key)
    if sorted_map is None:
        return
    sorted_map.pop(order, None)
    if not sorted_map:
        del maps[key]
