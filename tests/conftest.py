"""Fixtures shared by every test package."""

import os
import secrets
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.support.nats_server import Broker, any_broker, local_broker

# Every service refuses to start without it; tests use a fresh one per run.
os.environ.setdefault("IP_KEY_SECRET", secrets.token_hex(32))

# The same examples on every run, so CI never fails on a case no developer saw. No deadline,
# because a loaded 2-core CI machine makes per-example timings meaningless.
settings.register_profile(
    "calln", derandomize=True, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("calln")


@pytest.fixture
def nats_broker() -> Iterator[Broker]:
    """A broker for one test: NATS_URL, else testcontainers, else nats-server on a free port."""
    with any_broker() as broker:
        yield broker


@pytest.fixture
def own_broker() -> Iterator[Broker]:
    """A nats-server started for this test alone, which the test may stop and restart."""
    with local_broker() as broker:
        yield broker
