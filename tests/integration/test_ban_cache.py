"""BanCache on real NATS: new bans arrive within a second, erases and end times remove them."""

import os
import time
from collections.abc import AsyncIterator

import nats.errors
import pytest
from nats.js.kv import KeyValue

from services.signalling.bans import BanCache
from shared.bans import BanRecord, BanStore, open_bans_bucket
from shared.ipkey import ip_key
from tests.support.moderation import nats_client
from tests.support.nats_server import Broker
from tests.support.waiting import wait_until

SECRET = os.environ["IP_KEY_SECRET"].encode()
KEY = ip_key(SECRET, "203.0.113.60")
OLD_SECRET_KEY = ip_key(b"previous-secret-0123456789", "203.0.113.60")

# A new ban must reach live sessions on every gateway within one second.
BAN_DEADLINE_S = 1.0

pytestmark = pytest.mark.timeout(30)


def ban(days: float = 1.0, now_s: float | None = None) -> BanRecord:
    start_s = time.time() if now_s is None else now_s
    return BanRecord(until=start_s + days * 86400, reason="spam", created_at=start_s)


@pytest.fixture
async def bucket(nats_broker: Broker) -> AsyncIterator[KeyValue]:
    async with nats_client(nats_broker.url) as client:
        yield await open_bans_bucket(client.jetstream())


async def started_cache(bucket: KeyValue, **kwargs: object) -> BanCache:
    cache = BanCache(bucket, **kwargs)  # type: ignore[arg-type]  # keyword arguments of BanCache
    await cache.start(timeout_s=5.0)
    return cache


async def test_new_ban_seen_within_deadline(bucket: KeyValue) -> None:
    received: list[tuple[str, float]] = []

    async def on_ban(key: str, until: float) -> None:
        received.append((key, until))

    cache = await started_cache(bucket, on_ban=on_ban)
    try:
        record = ban()
        await BanStore(bucket).put(KEY, record)

        async def seen() -> bool:
            return cache.banned_until(KEY, time.time()) == record.until and received == [(KEY, record.until)]

        await wait_until(seen, timeout_s=BAN_DEADLINE_S, what="ban reached the cache and on_ban")
    finally:
        await cache.close()


async def test_existing_bans_loaded_at_start(bucket: KeyValue) -> None:
    record = ban()
    await BanStore(bucket).put(KEY, record)
    calls: list[str] = []

    async def on_ban(key: str, _until: float) -> None:
        calls.append(key)

    cache = await started_cache(bucket, on_ban=on_ban)
    try:
        assert cache.banned_until(KEY, time.time()) == record.until
        assert calls == []
    finally:
        await cache.close()


async def test_erase_reaches_cache(bucket: KeyValue) -> None:
    store = BanStore(bucket)
    await store.put(KEY, ban())
    cache = await started_cache(bucket)
    try:
        await store.delete(KEY)

        async def cleared() -> bool:
            return cache.banned_until(KEY, time.time()) is None

        await wait_until(cleared, timeout_s=BAN_DEADLINE_S, what="erase reached the cache")
        assert len(cache) == 0
    finally:
        await cache.close()


async def test_ended_ban_no_longer_counts(bucket: KeyValue) -> None:
    record = ban(days=1.0)
    await BanStore(bucket).put(KEY, record)
    cache = await started_cache(bucket)
    try:
        assert cache.banned_until(KEY, record.until - 1) == record.until
        assert cache.banned_until(KEY, record.until) is None
        assert len(cache) == 0
    finally:
        await cache.close()


async def test_previous_secret_key_checked(bucket: KeyValue) -> None:
    record = ban()
    await BanStore(bucket).put(OLD_SECRET_KEY, record)
    cache = await started_cache(bucket)
    try:
        assert cache.banned_until(KEY, time.time()) is None
        assert cache.banned_until(KEY, time.time(), previous_key=OLD_SECRET_KEY) == record.until
    finally:
        await cache.close()


async def test_invalid_record_is_ignored(bucket: KeyValue) -> None:
    cache = await started_cache(bucket)
    try:
        await bucket.put(KEY, b"\x93not a ban")
        record = ban()
        other = ip_key(SECRET, "203.0.113.61")
        await BanStore(bucket).put(other, record)

        async def valid_seen() -> bool:
            return cache.banned_until(other, time.time()) == record.until

        await wait_until(valid_seen, timeout_s=BAN_DEADLINE_S, what="valid ban after an invalid one")
        assert cache.banned_until(KEY, time.time()) is None
    finally:
        await cache.close()


async def test_watch_restarts_after_broker_restart(own_broker: Broker) -> None:
    async with nats_client(own_broker.url) as client:
        bucket = await open_bans_bucket(client.jetstream())
        cache = await started_cache(bucket, reconnects=lambda: client.stats["reconnects"])
        try:
            own_broker.stop()
            own_broker.start()
            record = ban()

            async def stored_and_seen() -> bool:
                try:
                    await BanStore(bucket).put(KEY, record)
                except (nats.errors.Error, TimeoutError):
                    return False
                return cache.banned_until(KEY, time.time()) == record.until

            await wait_until(stored_and_seen, timeout_s=10.0, what="ban seen after a broker restart")
        finally:
            await cache.close()
