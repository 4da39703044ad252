"""Token bucket rate limits. Tests pass the time in, so none of them waits."""

from hypothesis import given
from hypothesis import strategies as st

from services.signalling.ratelimit import TokenBucket


def allowed_count(bucket: TokenBucket, now_s: float, attempts: int) -> int:
    return sum(bucket.allow(now_s) for _ in range(attempts))


def test_first_use_allows_full_burst() -> None:
    bucket = TokenBucket(rate_per_s=1.0, burst=5)

    assert allowed_count(bucket, 100.0, 10) == 5


def test_empty_bucket_rejects() -> None:
    bucket = TokenBucket(rate_per_s=1.0, burst=2)
    allowed_count(bucket, 0.0, 2)

    assert bucket.allow(0.0) is False
    assert bucket.allow(0.5) is False


def test_refills_at_rate() -> None:
    bucket = TokenBucket(rate_per_s=2.0, burst=10)
    allowed_count(bucket, 0.0, 10)

    assert allowed_count(bucket, 1.0, 10) == 2
    assert allowed_count(bucket, 2.5, 10) == 3


def test_refill_capped_at_burst() -> None:
    bucket = TokenBucket(rate_per_s=100.0, burst=3)
    allowed_count(bucket, 0.0, 3)

    assert allowed_count(bucket, 3600.0, 10) == 3


def test_rejected_attempts_cost_nothing() -> None:
    bucket = TokenBucket(rate_per_s=1.0, burst=1)
    bucket.allow(0.0)
    allowed_count(bucket, 0.2, 50)

    assert bucket.allow(1.0) is True


def test_cost_above_one() -> None:
    bucket = TokenBucket(rate_per_s=1.0, burst=10)

    assert bucket.allow(0.0, cost=6) is True
    assert bucket.allow(0.0, cost=6) is False
    assert bucket.allow(0.0, cost=4) is True
    assert bucket.allow(0.0) is False


def test_cost_above_burst_never_allowed() -> None:
    bucket = TokenBucket(rate_per_s=1000.0, burst=5)

    assert bucket.allow(0.0, cost=6) is False
    assert bucket.allow(1000.0, cost=6) is False


def test_slow_rate_report_limit() -> None:
    # The gateway's report limiter with its default of five reports per hour.
    bucket = TokenBucket(rate_per_s=5 / 3600.0, burst=5)

    assert allowed_count(bucket, 0.0, 6) == 5
    assert bucket.allow(700.0) is False
    assert bucket.allow(730.0) is True


@given(
    rate_per_s=st.floats(min_value=0.1, max_value=100.0),
    burst=st.integers(min_value=1, max_value=60),
    gaps_s=st.lists(st.floats(min_value=0.0, max_value=2.0), min_size=1, max_size=200),
)
def test_allowed_never_exceeds_burst_plus_rate(rate_per_s: float, burst: int, gaps_s: list[float]) -> None:
    bucket = TokenBucket(rate_per_s=rate_per_s, burst=burst)
    start_s = 1000.0
    now_s = start_s
    allowed = 0

    for gap_s in gaps_s:
        now_s += gap_s
        allowed += bucket.allow(now_s)

    assert allowed <= burst + rate_per_s * (now_s - start_s) + 1e-6


@given(rate_per_s=st.floats(min_value=0.1, max_value=100.0), burst=st.integers(min_value=1, max_value=60))
def test_steady_rate_below_limit_always_allowed(rate_per_s: float, burst: int) -> None:
    bucket = TokenBucket(rate_per_s=rate_per_s, burst=burst)
    interval_s = 1.0 / rate_per_s * 1.01

    assert all(bucket.allow(1.0 + index * interval_s) for index in range(200))


def test_bucket_full_after_refill() -> None:
    bucket = TokenBucket(rate_per_s=1.0, burst=2)
    assert bucket.is_full(0.0)
    assert bucket.allow(0.0)
    assert not bucket.is_full(0.5)
    assert bucket.is_full(1.0)
