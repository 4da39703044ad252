"""Retention on real NATS with an injectable clock: bans end on time, old log files go."""

import datetime
import os
import time
from pathlib import Path

import aiohttp
import pytest
from nats.js.errors import KeyNotFoundError

from shared import subjects
from shared.bans import BanRecord
from shared.ipkey import ip_key
from tests.support.moderation import nats_client, running_moderation
from tests.support.nats_server import Broker
from tests.support.waiting import wait_until

DAY_S = 86400
SECRET = os.environ["IP_KEY_SECRET"].encode()
KEY = ip_key(SECRET, "203.0.113.50")
OTHER_KEY = ip_key(SECRET, "203.0.113.51")

pytestmark = pytest.mark.timeout(60)


class FakeClock:
    """Wall-clock seconds that the test moves forward by hand."""

    def __init__(self) -> None:
        self.now_s = time.time()

    def __call__(self) -> float:
        return self.now_s


def age_file(path: Path, age_s: float, now_s: float) -> None:
    path.write_text('{"event": "old_line"}\n')
    os.utime(path, (now_s - age_s, now_s - age_s))


async def metric_value(port: int, name: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    return next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " "))


async def test_bans_disappear_at_end_time(nats_broker: Broker) -> None:
    clock = FakeClock()
    async with running_moderation(nats_broker.url, clock=clock, ban_purge_interval_s=0.05) as moderation:
        keeper = moderation.keeper
        assert keeper is not None
        start_s = clock.now_s
        await keeper.impose(KEY, BanRecord(until=start_s + DAY_S, reason="spam", created_at=start_s), replace=True)
        await keeper.impose(
            OTHER_KEY, BanRecord(until=start_s + 3 * DAY_S, reason="hate", created_at=start_s), replace=True
        )

        clock.now_s = start_s + DAY_S - 1
        assert moderation.retention is not None

        assert await moderation.retention.purge_bans() == 0
        assert await keeper.stores.bans.get(KEY) is not None
        assert await metric_value(moderation.http_port, "calln_moderation_active_bans") == "2.0"

        clock.now_s = start_s + DAY_S

        async def first_gone() -> bool:
            return await keeper.stores.bans.get(KEY) is None

        await wait_until(first_gone, what="first ban purged at its end time")
        assert await keeper.stores.bans.get(OTHER_KEY) is not None
        assert await metric_value(moderation.http_port, "calln_moderation_purged_records_total") == "1.0"


async def test_purged_ban_leaves_no_trace(nats_broker: Broker) -> None:
    clock = FakeClock()
    overrides = {"ban_purge_interval_s": 0.05, "marker_grace_s": 0.0}
    async with (
        running_moderation(nats_broker.url, clock=clock, **overrides) as moderation,
        nats_client(nats_broker.url) as client,
    ):
        keeper = moderation.keeper
        assert keeper is not None
        await keeper.impose(KEY, BanRecord(until=clock.now_s + 60, reason="spam", created_at=clock.now_s), replace=True)
        clock.now_s += 61
        js = client.jetstream()

        async def stream_empty() -> bool:
            return (await js.stream_info(f"KV_{subjects.BANS_BUCKET}")).state.messages == 0

        await wait_until(stream_empty, what="ban and its purge marker removed from the stream")
        with pytest.raises(KeyNotFoundError):
            await moderation.buckets[subjects.BANS_BUCKET].get(KEY)


async def test_old_log_files_are_deleted(nats_broker: Broker, tmp_path: Path) -> None:
    clock = FakeClock()
    old = tmp_path / "gateway-old.log"
    recent = tmp_path / "gateway-recent.log"
    age_file(old, 8 * DAY_S, clock.now_s)
    age_file(recent, 6 * DAY_S, clock.now_s)

    async with running_moderation(
        nats_broker.url, clock=clock, log_dir=str(tmp_path), log_purge_interval_s=0.05
    ) as moderation:

        async def old_gone() -> bool:
            return not old.exists()

        await wait_until(old_gone, what="8-day-old log file deleted")
        assert recent.exists()
        assert await metric_value(moderation.http_port, "calln_moderation_purged_files_total") == "1.0"


async def test_log_retention_follows_clock(nats_broker: Broker, tmp_path: Path) -> None:
    clock = FakeClock()
    file = tmp_path / "matcher-day.log"
    age_file(file, 6 * DAY_S, clock.now_s)

    async with running_moderation(nats_broker.url, clock=clock, log_dir=str(tmp_path)) as moderation:
        retention = moderation.retention
        assert retention is not None

        assert retention.purge_logs() == 0
        clock.now_s += DAY_S + 1
        assert retention.purge_logs() == 1
        assert not file.exists()


async def test_purge_skips_symlinks(nats_broker: Broker, tmp_path: Path) -> None:
    clock = FakeClock()
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "keep.txt"
    age_file(target, 30 * DAY_S, clock.now_s)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "link.log").symlink_to(target)

    async with running_moderation(nats_broker.url, clock=clock, log_dir=str(logs)) as moderation:
        retention = moderation.retention
        assert retention is not None

        assert retention.purge_logs() == 0
        assert target.exists()


async def test_daily_file_purged_by_its_date(nats_broker: Broker, tmp_path: Path) -> None:
    """A daily file's first line is as old as its UTC day, even when the file changed later."""
    clock = FakeClock()

    def day_name(age_s: float) -> str:
        return datetime.datetime.fromtimestamp(clock.now_s - age_s, datetime.UTC).strftime("%Y-%m-%d")

    started_long_ago = tmp_path / f"gateway-{day_name(7.5 * DAY_S)}.log"
    started_today = tmp_path / f"gateway-{day_name(0)}.log"
    age_file(started_long_ago, 6.5 * DAY_S, clock.now_s)
    age_file(started_today, 0, clock.now_s)

    async with running_moderation(nats_broker.url, clock=clock, log_dir=str(tmp_path)) as moderation:
        retention = moderation.retention
        assert retention is not None

        assert retention.purge_logs() == 1
        assert not started_long_ago.exists()
        assert started_today.exists()
