"""A real coturn for tests: its secret, a skip marker when coturn is missing, and a running server."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from scripts.coturn import Coturn, find_turnserver, start_coturn
from shared.turn import MIN_TURN_SECRET_CHARS, TurnSettings
from tests.support.nats_server import free_port

TURN_SECRET = "test-turn-secret-" + "0" * MIN_TURN_SECRET_CHARS

# Seconds a test credential lives; far longer than any test, so no renewal happens mid-test.
CREDENTIAL_LIFETIME_S = 600

skip_without_turnserver = pytest.mark.skipif(
    find_turnserver() is None,
    reason="coturn's turnserver binary is not installed; install it with `apt-get install coturn`",
)


def turn_settings(url: str) -> TurnSettings:
    """Gateway TURN settings that hand out credentials for the coturn at `url`."""
    return TurnSettings(urls=(url,), secret=TURN_SECRET.encode(), credential_lifetime_s=CREDENTIAL_LIFETIME_S)


@contextmanager
def running_coturn(log_dir: Path, port: int | None = None) -> Iterator[Coturn]:
    """Run coturn with the development config on a free loopback port until the block ends."""
    server = start_coturn(port or free_port(), TURN_SECRET, log_path=log_dir / "coturn.log")
    assert server is not None, "turnserver is missing; mark the test with skip_without_turnserver"
    try:
        yield server
    finally:
        server.stop()
