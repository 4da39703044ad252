"""Ban decisions as pure functions: distinct reporters in a window, escalation, the 30-day cap.

Nothing here touches NATS or a clock, so property tests can drive the rules directly.
"""

from collections import Counter, deque
from dataclasses import dataclass

from shared.bans import REPORT_REASONS, BanRecord
from shared.policy import MAX_BAN_S, PolicySettings


@dataclass(frozen=True, slots=True)
class BanRules:
    """How many distinct reporters within which window ban a key, and for how long."""

    threshold: int
    window_s: float
    steps_s: tuple[int, ...]

    @classmethod
    def from_policy(cls, policy: PolicySettings) -> "BanRules":
        return cls(threshold=policy.report_threshold, window_s=policy.report_window_s, steps_s=policy.ban_steps_s)


@dataclass(frozen=True, slots=True)
class TallyEntry:
    """One counted report: a digest of the reporter's key, when it came, and its reason."""

    reporter_tag: str
    at_s: float
    reason: str


def recent_entries(entries: tuple[TallyEntry, ...], now_s: float, window_s: float) -> tuple[TallyEntry, ...]:
    """Keep the entries inside the counting window."""
    return tuple(entry for entry in entries if now_s - window_s < entry.at_s <= now_s)


def add_report(
    entries: tuple[TallyEntry, ...], entry: TallyEntry, window_s: float
) -> tuple[tuple[TallyEntry, ...], bool]:
    """Add a report to a tally; the flag is False when this reporter already counts in the window."""
    current = recent_entries(entries, entry.at_s, window_s)
    if any(existing.reporter_tag == entry.reporter_tag for existing in current):
        return current, False
    return (*current, entry), True


def ban_length_s(steps_s: tuple[int, ...], previous_bans: int) -> int:
    """Pick the step for a key's next ban; past the last step the last one repeats, never above the cap."""
    step = steps_s[min(max(previous_bans, 0), len(steps_s) - 1)]
    return min(step, MAX_BAN_S)


def ban_reason(entries: tuple[TallyEntry, ...]) -> str:
    """Name the most frequent reason; a tie goes to the reason listed first in REPORT_REASONS."""
    counts = Counter(entry.reason for entry in entries)
    return max(REPORT_REASONS, key=lambda reason: (counts[reason], -REPORT_REASONS.index(reason)))


def decide_ban(
    rules: BanRules, entries: tuple[TallyEntry, ...], previous_bans: int, now_s: float
) -> BanRecord | None:
    """Return the ban that a tally earns, or None while it is below the threshold."""
    current = recent_entries(entries, now_s, rules.window_s)
    if len({entry.reporter_tag for entry in current}) < rules.threshold:
        return None
    length_s = ban_length_s(rules.steps_s, previous_bans)
    return BanRecord(until=now_s + length_s, reason=ban_reason(current), created_at=now_s)


def merge_bans(current: BanRecord | None, new: BanRecord) -> BanRecord:
    """Combine a new ban with one still running: the later end wins, counted from now, within the cap."""
    if current is None or current.until <= new.created_at:
        return new
    until = min(max(current.until, new.until), new.created_at + MAX_BAN_S)
    return BanRecord(until=until, reason=new.reason, created_at=new.created_at)


class SlidingWindowLimit:
    """At most `limit` events per key within `window_s`, by the times of the accepted events."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._times: dict[str, deque[float]] = {}

    def allow(self, key: str, now_s: float) -> bool:
        """Count an event for `key` and return whether it is within the limit."""
        times = self._times.setdefault(key, deque())
        while times and now_s - times[0] >= self.window_s:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now_s)
        return True

    def forget(self, key: str) -> None:
        self._times.pop(key, None)

    def prune(self, now_s: float) -> None:
        """Drop keys whose events all left the window, so memory follows the active reporters."""
        for key in [key for key, times in self._times.items() if not times or now_s - times[-1] >= self.window_s]:
            del self._times[key]

    def __len__(self) -> int:
        return len(self._times)
