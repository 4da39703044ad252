"""Ban decisions: threshold, window, escalation, the 30-day cap, and the report handler's guards."""

import hashlib
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue
from prometheus_client import CollectorRegistry

from services.moderation.decisions import (
    BanRules,
    SlidingWindowLimit,
    TallyEntry,
    add_report,
    ban_length_s,
    ban_reason,
    decide_ban,
    merge_bans,
)
from services.moderation.keeper import BanKeeper, Stores
from services.moderation.metrics import ModerationMetrics, counter_total
from services.moderation.reports import Rejection, ReportHandler
from services.moderation.stores import BlockStore, StrikeStore, TallyStore
from shared.bans import BanRecord, BanStore, BanTooLongError, InvalidBanError, decode_ban
from shared.events import ModerationReport
from shared.policy import MAX_BAN_S

HOUR_S = 3600
DAY_S = 24 * HOUR_S
STEPS_S = (DAY_S, 7 * DAY_S, 30 * DAY_S)
RULES = BanRules(threshold=3, window_s=DAY_S, steps_s=STEPS_S)
START_S = 1_700_000_000.0


def key(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


class FakeBucket:
    """An in-memory KV bucket with the nats-py calls the stores use and the same errors."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[bytes, int]] = {}
        self._revision = 0

    async def get(self, name: str) -> KeyValue.Entry:
        if name not in self.values:
            raise KeyNotFoundError
        value, revision = self.values[name]
        return KeyValue.Entry("fake", name, value, revision, None, None, None)

    async def put(self, name: str, value: bytes) -> int:
        self._revision += 1
        self.values[name] = (value, self._revision)
        return self._revision

    async def create(self, name: str, value: bytes) -> int:
        if name in self.values:
            raise KeyWrongLastSequenceError
        return await self.put(name, value)

    async def update(self, name: str, value: bytes, last: int | None = None) -> int:
        if name not in self.values or self.values[name][1] != last:
            raise KeyWrongLastSequenceError
        return await self.put(name, value)

    async def purge(self, name: str) -> bool:
        self.values.pop(name, None)
        return True

    async def delete(self, name: str, last: int | None = None) -> bool:
        if last is not None and (name not in self.values or self.values[name][1] != last):
            raise KeyWrongLastSequenceError
        self.values.pop(name, None)
        return True

    async def keys(self) -> list[str]:
        if not self.values:
            raise NoKeysError
        return list(self.values)


@dataclass
class Harness:
    """A report handler on fake buckets, with a clock the test moves."""

    now_s: float
    bans: FakeBucket
    handler: ReportHandler
    keeper: BanKeeper
    metrics: ModerationMetrics

    def clock(self) -> float:
        return self.now_s

    def stored_bans(self) -> dict[str, BanRecord]:
        return {name: decode_ban(value) for name, (value, _revision) in self.bans.values.items()}

    async def report(self, reporter: str, reported: str, reason: str = "spam") -> Rejection | BanRecord | None:
        return await self.handler.handle(ModerationReport("call-1", key(reporter), key(reported), reason))


def make_harness(reports_per_hour: int = 100) -> Harness:
    bans = FakeBucket()
    metrics = ModerationMetrics(CollectorRegistry())
    harness = Harness(START_S, bans, None, None, metrics)  # type: ignore[arg-type]  # filled in below
    stores = Stores(
        BanStore(bans, harness.clock),  # type: ignore[arg-type]  # FakeBucket offers the calls BanStore makes
        StrikeStore(FakeBucket()),  # type: ignore[arg-type]
        TallyStore(FakeBucket()),  # type: ignore[arg-type]
        BlockStore(FakeBucket()),  # type: ignore[arg-type]
    )
    limiter = SlidingWindowLimit(reports_per_hour, HOUR_S)
    harness.keeper = BanKeeper(stores, RULES.window_s, limiter, harness.clock)
    harness.handler = ReportHandler(harness.keeper, RULES, limiter, DAY_S, metrics, harness.clock)
    return harness


# -- pure rules -------------------------------------------------------------------------------


def entry(reporter: str, at_s: float, reason: str = "spam") -> TallyEntry:
    return TallyEntry(reporter, at_s, reason)


def test_threshold_needs_three_distinct_reporters() -> None:
    two = (entry("a", START_S), entry("b", START_S))
    three = (*two, entry("c", START_S))

    assert decide_ban(RULES, two, 0, START_S) is None
    assert decide_ban(RULES, three, 0, START_S) is not None


def test_same_reporter_counts_once() -> None:
    entries, first = add_report((), entry("a", START_S), DAY_S)
    entries, second = add_report(entries, entry("a", START_S + 10), DAY_S)

    assert first is True
    assert second is False
    assert len(entries) == 1


def test_reports_outside_window_expire() -> None:
    old = (entry("a", START_S), entry("b", START_S))
    now_s = START_S + DAY_S + 1

    entries, _counted = add_report(old, entry("c", now_s), DAY_S)

    assert entries == (entry("c", now_s),)
    assert decide_ban(RULES, (*old, entry("c", now_s)), 0, now_s) is None


def test_escalation_steps() -> None:
    assert ban_length_s(STEPS_S, 0) == DAY_S
    assert ban_length_s(STEPS_S, 1) == 7 * DAY_S
    assert ban_length_s(STEPS_S, 2) == 30 * DAY_S
    assert ban_length_s(STEPS_S, 9) == 30 * DAY_S


def test_escalation_never_passes_cap() -> None:
    assert ban_length_s((DAY_S, 40 * DAY_S), 5) == MAX_BAN_S


def test_decided_ban_uses_escalation() -> None:
    three = (entry("a", START_S), entry("b", START_S), entry("c", START_S))

    second = decide_ban(RULES, three, 1, START_S)

    assert second is not None
    assert second.until - second.created_at == 7 * DAY_S


def test_ban_reason_is_most_frequent() -> None:
    entries = (entry("a", 0, "hate"), entry("b", 0, "spam"), entry("c", 0, "spam"))

    assert ban_reason(entries) == "spam"
    assert ban_reason((entry("a", 0, "spam"), entry("b", 0, "hate"))) == "spam"


def test_record_over_cap_is_refused() -> None:
    with pytest.raises(BanTooLongError):
        BanRecord(until=START_S + MAX_BAN_S + 1, reason="spam", created_at=START_S)


def test_record_with_unknown_reason_is_refused() -> None:
    with pytest.raises(InvalidBanError):
        BanRecord(until=START_S + 1, reason="annoying", created_at=START_S)


def test_merge_keeps_later_end_within_cap() -> None:
    running = BanRecord(until=START_S + 29 * DAY_S, reason="spam", created_at=START_S)
    new = BanRecord(until=START_S + 10 * DAY_S + DAY_S, reason="hate", created_at=START_S + 10 * DAY_S)

    merged = merge_bans(running, new)

    assert merged.until == running.until
    assert merged.until - merged.created_at <= MAX_BAN_S


def test_limit_allows_then_rejects() -> None:
    limit = SlidingWindowLimit(2, 60.0)

    assert [limit.allow("k", 0.0), limit.allow("k", 1.0), limit.allow("k", 2.0)] == [True, True, False]
    assert limit.allow("k", 60.5) is True
    limit.prune(1000.0)
    assert len(limit) == 0


# -- the handler on fake buckets ----------------------------------------------------------------


async def test_handler_bans_at_threshold() -> None:
    harness = make_harness()

    outcomes = [await harness.report(name, "target") for name in ("a", "b", "c")]

    assert outcomes[0] is None
    assert outcomes[1] is None
    assert isinstance(outcomes[2], BanRecord)
    assert outcomes[2].until == START_S + DAY_S
    assert key("target") in harness.stored_bans()
    assert counter_total(harness.metrics.bans_created) == 1


async def test_handler_escalates_repeat_bans() -> None:
    harness = make_harness()
    lengths = []

    for round_number in range(4):
        for name in ("a", "b", "c"):
            outcome = await harness.report(f"{name}{round_number}", "target")
        assert isinstance(outcome, BanRecord)
        lengths.append(outcome.until - outcome.created_at)
        harness.now_s = outcome.until + 1

    assert lengths == [DAY_S, 7 * DAY_S, 30 * DAY_S, 30 * DAY_S]


@pytest.mark.parametrize(
    ("reporter", "reported", "reason", "rejection"),
    [
        ("a", "b", "rude", Rejection.INVALID_REASON),
        ("a", "a", "spam", Rejection.SELF_REPORT),
    ],
)
async def test_handler_rejects_bad_reports(reporter: str, reported: str, reason: str, rejection: Rejection) -> None:
    harness = make_harness()

    assert await harness.report(reporter, reported, reason) == rejection
    assert counter_total(harness.metrics.reports_rejected) == 1


async def test_handler_rejects_malformed_key() -> None:
    harness = make_harness()

    outcome = await harness.handler.handle(ModerationReport("c", "not-a-key", key("b"), "spam"))

    assert outcome == Rejection.INVALID_KEY


async def test_handler_counts_partner_once() -> None:
    harness = make_harness()

    first = await harness.report("a", "target")
    second = await harness.report("a", "target")

    assert first is None
    assert second == Rejection.DUPLICATE


async def test_banned_reporter_cannot_report() -> None:
    harness = make_harness()
    for name in ("x", "y", "z"):
        await harness.report(name, "banned")

    assert await harness.report("banned", "someone") == Rejection.REPORTER_BANNED


async def test_one_reporter_bans_nobody() -> None:
    harness = make_harness(reports_per_hour=5)

    outcomes = [await harness.report("angry", f"partner{index}") for index in range(50)]

    assert outcomes.count(None) == 5
    assert outcomes.count(Rejection.RATE_LIMITED) == 45
    assert harness.stored_bans() == {}


# -- the cap as a property ------------------------------------------------------------------------

NAMES = st.sampled_from(["p0", "p1", "p2", "p3", "p4", "p5"])
REASONS = st.sampled_from(["spam", "hate", "harassment", "other"])
STEP = st.one_of(
    st.tuples(st.just("report"), NAMES, NAMES, REASONS),
    st.tuples(st.just("manual"), NAMES, st.floats(min_value=0.001, max_value=60.0), REASONS),
    st.tuples(st.just("wait"), st.floats(min_value=0.0, max_value=40 * DAY_S)),
    st.tuples(st.just("erase"), NAMES),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, max_size=60))
async def test_no_stored_ban_exceeds_cap(steps: list[tuple[object, ...]]) -> None:
    harness = make_harness(reports_per_hour=1000)

    for step in steps:
        await apply_step(harness, step)
        for record in harness.stored_bans().values():
            assert record.until - record.created_at <= MAX_BAN_S
            assert record.until - harness.now_s <= MAX_BAN_S
            assert record.created_at <= harness.now_s


async def apply_step(harness: Harness, step: tuple[object, ...]) -> None:
    kind = step[0]
    if kind == "report":
        _kind, reporter, reported, reason = step
        await harness.report(str(reporter), str(reported), str(reason))
    elif kind == "manual":
        _kind, name, days, reason = step
        assert isinstance(days, float)
        try:
            record = BanRecord(until=harness.now_s + days * DAY_S, reason=str(reason), created_at=harness.now_s)
        except BanTooLongError:
            assert days * DAY_S > MAX_BAN_S
            return
        await harness.keeper.impose(key(str(name)), record, replace=True)
    elif kind == "wait":
        assert isinstance(step[1], float)
        harness.now_s += step[1]
    else:
        await harness.keeper.erase((key(str(step[1])),))
