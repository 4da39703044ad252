"""Run the moderation service in-process for tests, and read its buckets."""

import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import nats
from nats.aio.client import Client

from services.moderation.app import Moderation
from services.moderation.settings import ModerationSettings
from shared.settings import CommonSettings

# A token long enough for the settings check; tests never reuse it outside their own process.
TEST_ADMIN_TOKEN = "test-admin-token-0123456789abcdef"


def moderation_settings(nats_url: str, log_dir: str | None = None, **overrides: Any) -> ModerationSettings:
    """Settings from the environment with free ports, a test token and `overrides` applied.

    `log_dir` is only the directory that retention purges: in-process services do not
    reconfigure the test's logging.
    """
    base = ModerationSettings.from_env()
    common = dataclasses.replace(CommonSettings.from_env(), nats_url=nats_url, log_dir=log_dir)
    values: dict[str, Any] = {
        "common": common,
        "http_port": 0,
        "admin_port": 0,
        "admin_token": TEST_ADMIN_TOKEN,
    }
    values.update(overrides)
    return dataclasses.replace(base, **values)


@asynccontextmanager
async def running_moderation(
    nats_url: str, clock: Callable[[], float] = time.time, **overrides: Any
) -> AsyncIterator[Moderation]:
    """Start a moderation service in this event loop and stop it when the block ends."""
    moderation = Moderation(moderation_settings(nats_url, **overrides), clock)
    await moderation.start()
    try:
        yield moderation
    finally:
        await moderation.close()


@asynccontextmanager
async def nats_client(url: str) -> AsyncIterator[Client]:
    client = await nats.connect(url, connect_timeout=5)
    try:
        yield client
    finally:
        await client.drain()
