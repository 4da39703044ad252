"""The moderation service on real NATS: reports become bans, bucket limits, the admin API and its CLI."""

import asyncio
import json
import os
import subprocess
import sys
import time

import aiohttp
import pytest
from nats.aio.client import Client
from nats.js.api import StorageType
from nats.js.errors import KeyNotFoundError

from services.moderation.app import Moderation
from shared import subjects
from shared.bans import (
    BAN_STRIKES_BUCKET,
    REPORT_BLOCKS_BUCKET,
    REPORT_COUNTS_BUCKET,
    decode_ban,
    read_blocked_keys,
)
from shared.codec import encode
from shared.events import ModerationReport
from shared.ipkey import ip_key
from shared.policy import MAX_BAN_S, PolicySettings
from tests.support.moderation import TEST_ADMIN_TOKEN, nats_client, running_moderation
from tests.support.nats_server import Broker, free_port
from tests.support.waiting import wait_until

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.path.join(REPO_ROOT, "scripts", "calln_admin.py")

# TEST-NET-3 and the IPv6 documentation prefix: addresses used only as data.
ADDRESS = "203.0.113.7"
IPV6_ADDRESS = "2001:db8::1"
SECRET = os.environ["IP_KEY_SECRET"].encode()

pytestmark = pytest.mark.timeout(60)


def key_of(address: str) -> str:
    return ip_key(SECRET, address)


def auth(token: str = TEST_ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def admin_url(moderation: Moderation, path: str) -> str:
    return f"http://127.0.0.1:{moderation.admin_port}{path}"


async def publish_report(client: Client, reporter: str, reported: str, reason: str = "harassment") -> None:
    report = ModerationReport("call-" + reporter[-3:], key_of(reporter), key_of(reported), reason)
    await client.publish(subjects.MODERATION_REPORT, encode(report))
    await client.flush()


async def stored_ban(moderation: Moderation, address: str) -> bytes | None:
    try:
        entry = await moderation.buckets[subjects.BANS_BUCKET].get(key_of(address))
    except KeyNotFoundError:
        return None
    return entry.value


async def test_three_reporters_ban_key(nats_broker: Broker) -> None:
    async with running_moderation(nats_broker.url) as moderation, nats_client(nats_broker.url) as client:
        for reporter in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
            await publish_report(client, reporter, ADDRESS)

        async def banned() -> bool:
            return await stored_ban(moderation, ADDRESS) is not None

        await wait_until(banned, what="ban stored")
        payload = await stored_ban(moderation, ADDRESS)
        assert payload is not None
        record = decode_ban(payload)
        assert record.reason == "harassment"
        assert record.until - record.created_at == 24 * 3600


async def test_two_reporters_ban_nobody(nats_broker: Broker) -> None:
    async with running_moderation(nats_broker.url) as moderation, nats_client(nats_broker.url) as client:
        for reporter in ("198.51.100.1", "198.51.100.2", "198.51.100.1"):
            await publish_report(client, reporter, ADDRESS)

        async def all_handled() -> bool:
            return moderation.metrics.totals()["reports_received"] == 3

        await wait_until(all_handled, what="three reports handled")
        assert await stored_ban(moderation, ADDRESS) is None
        assert moderation.metrics.totals()["reports_rejected"] == 1


async def test_report_blocks_partner(nats_broker: Broker) -> None:
    reporter = "198.51.100.9"
    async with running_moderation(nats_broker.url) as moderation, nats_client(nats_broker.url) as client:
        await publish_report(client, reporter, ADDRESS)
        bucket = moderation.buckets[REPORT_BLOCKS_BUCKET]

        async def blocked() -> bool:
            return await read_blocked_keys(bucket, key_of(reporter), time.time(), 1.0) == (key_of(ADDRESS),)

        await wait_until(blocked, what="block stored")
        assert await read_blocked_keys(bucket, key_of(reporter), time.time() + 25 * 3600, 1.0) == ()
        assert await read_blocked_keys(bucket, key_of(ADDRESS), time.time(), 1.0) == ()

        async with aiohttp.ClientSession() as http:
            async with http.get(admin_url(moderation, f"/admin/bans/{reporter}"), headers=auth()) as response:
                assert (await response.json())["blocks"] == 1
            async with http.get(admin_url(moderation, f"/admin/bans/{ADDRESS}"), headers=auth()) as response:
                assert (await response.json())["blocks"] == 0


async def test_buckets_have_promised_max_age(nats_broker: Broker) -> None:
    policy = PolicySettings.from_env()
    expected = {
        subjects.BANS_BUCKET: MAX_BAN_S,
        BAN_STRIKES_BUCKET: MAX_BAN_S,
        REPORT_COUNTS_BUCKET: policy.report_window_s,
        REPORT_BLOCKS_BUCKET: policy.report_block_s,
    }
    async with running_moderation(nats_broker.url), nats_client(nats_broker.url) as client:
        js = client.jetstream()
        for bucket, max_age_s in expected.items():
            config = (await js.stream_info(f"KV_{bucket}")).config
            assert config.max_age == max_age_s, bucket
            assert config.max_msgs_per_subject == 1, bucket
            assert config.storage == StorageType.FILE, bucket


async def test_changed_window_updates_bucket(nats_broker: Broker) -> None:
    async with running_moderation(nats_broker.url):
        pass
    policy = PolicySettings.from_env()
    shorter = type(policy)(**{**{f: getattr(policy, f) for f in policy.__slots__}, "report_window_hours": 2})

    async with running_moderation(nats_broker.url, policy=shorter), nats_client(nats_broker.url) as client:
        config = (await client.jetstream().stream_info(f"KV_{REPORT_COUNTS_BUCKET}")).config
        assert config.max_age == 2 * 3600


# -- admin API ----------------------------------------------------------------------------------


async def test_admin_ban_lookup_erase(nats_broker: Broker) -> None:
    async with running_moderation(nats_broker.url) as moderation, aiohttp.ClientSession() as http:
        url = admin_url(moderation, f"/admin/bans/{ADDRESS}")

        async with http.put(url, json={"days": 7, "reason": "spam"}, headers=auth()) as response:
            assert response.status == 200
            created = await response.json()
        assert created["ban"]["until"] - created["ban"]["created_at"] == 7 * 86400
        assert await stored_ban(moderation, ADDRESS) is not None

        async with http.get(url, headers=auth()) as response:
            lookup = await response.json()
        assert lookup["banned"] is True
        assert lookup["ban"]["reason"] == "spam"
        assert lookup["bans_recorded"] == 1

        async with http.delete(url, headers=auth()) as response:
            assert response.status == 200
            erased = await response.json()
        assert erased["erased"] is True
        assert await stored_ban(moderation, ADDRESS) is None

        async with http.get(url, headers=auth()) as response:
            after = await response.json()
        assert after == {"banned": False, "ban": None, "bans_recorded": 0, "reports_in_window": 0, "blocks": 0}


async def test_erase_removes_reports_and_blocks(nats_broker: Broker) -> None:
    async with running_moderation(nats_broker.url) as moderation, nats_client(nats_broker.url) as client:
        await publish_report(client, ADDRESS, "198.51.100.20")
        await publish_report(client, "198.51.100.21", ADDRESS)
        keeper = moderation.keeper
        assert keeper is not None

        async def both_counted() -> bool:
            return moderation.metrics.totals()["reports_received"] == 2 and bool(
                await keeper.stores.tallies.get(key_of(ADDRESS))
            )

        await wait_until(both_counted, what="reports counted")
        async with aiohttp.ClientSession() as http:
            url = admin_url(moderation, f"/admin/bans/{ADDRESS}")
            async with http.delete(url, headers=auth()) as response:
                assert (await response.json())["records"] >= 3

        assert await keeper.stores.tallies.get(key_of(ADDRESS)) == ()
        assert await keeper.stores.tallies.get(key_of("198.51.100.20")) == ()
        assert await keeper.stores.blocks.get(key_of(ADDRESS)) == {}
        assert await keeper.stores.blocks.get(key_of("198.51.100.21")) == {}


async def test_ipv6_ban_covers_prefix(nats_broker: Broker) -> None:
    async with running_moderation(nats_broker.url) as moderation, aiohttp.ClientSession() as http:
        url = admin_url(moderation, f"/admin/bans/{IPV6_ADDRESS}")
        async with http.put(url, json={"days": 1}, headers=auth()) as response:
            assert response.status == 200

        assert await stored_ban(moderation, "2001:db8::ffff:1") is not None


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "error"),
    [
        ("PUT", f"/admin/bans/{ADDRESS}", {}, {"days": 1}, 401, "unauthorized"),
        (
            "PUT",
            f"/admin/bans/{ADDRESS}",
            {"Authorization": "Bearer wrong-token-wrong-token"},
            {"days": 1},
            401,
            "unauthorized",
        ),
        ("PUT", f"/admin/bans/{ADDRESS}", {"Authorization": TEST_ADMIN_TOKEN}, {"days": 1}, 401, "unauthorized"),
        ("PUT", "/admin/bans/203.0.113.300", None, {"days": 1}, 400, "invalid_address"),
        ("PUT", "/admin/bans/not-an-address", None, {"days": 1}, 400, "invalid_address"),
        ("PUT", f"/admin/bans/{ADDRESS}", None, {"days": 31}, 400, "ban_too_long"),
        ("PUT", f"/admin/bans/{ADDRESS}", None, {"days": 30.01}, 400, "ban_too_long"),
        ("PUT", f"/admin/bans/{ADDRESS}", None, {"days": 0}, 400, "invalid_days"),
        ("PUT", f"/admin/bans/{ADDRESS}", None, {"days": True}, 400, "invalid_days"),
        ("PUT", f"/admin/bans/{ADDRESS}", None, {"days": "7"}, 400, "invalid_days"),
        ("PUT", f"/admin/bans/{ADDRESS}", None, {"days": 1, "reason": "annoying"}, 400, "invalid_reason"),
        ("PUT", f"/admin/bans/{ADDRESS}", None, [1], 400, "invalid_body"),
        ("DELETE", f"/admin/bans/{ADDRESS}", {}, None, 401, "unauthorized"),
        ("GET", "/admin/stats", {"Authorization": "Bearer x"}, None, 401, "unauthorized"),
        ("GET", "/admin/nothing", None, None, 404, "not_found"),
    ],
)
async def test_admin_rejects_bad_request(
    nats_broker: Broker, method: str, path: str, headers: dict[str, str] | None, body: object, status: int, error: str
) -> None:
    async with running_moderation(nats_broker.url) as moderation, aiohttp.ClientSession() as http:
        request_headers = auth() if headers is None else headers
        async with http.request(method, admin_url(moderation, path), json=body, headers=request_headers) as response:
            assert response.status == status
            payload = await response.json()

        assert payload["error"] == error
        assert payload["message"]
        assert ADDRESS not in payload["message"]
        assert await moderation.keeper.stores.bans.items() == {}  # type: ignore[union-attr]  # started above
        assert moderation.metrics.totals()["bans_created"] == 0


async def test_invalid_body_is_rejected(nats_broker: Broker) -> None:
    async with running_moderation(nats_broker.url) as moderation, aiohttp.ClientSession() as http:
        url = admin_url(moderation, f"/admin/bans/{ADDRESS}")
        async with http.put(url, data=b"{not json", headers=auth()) as response:
            assert response.status == 400
            assert (await response.json())["error"] == "invalid_body"
        async with http.put(url, data=b"x" * 10_000, headers=auth()) as response:
            assert response.status == 413
            assert (await response.json())["message"]

        assert await stored_ban(moderation, ADDRESS) is None


async def test_admin_stats_are_aggregate(nats_broker: Broker) -> None:
    async with running_moderation(nats_broker.url) as moderation, aiohttp.ClientSession() as http:
        async with http.put(admin_url(moderation, f"/admin/bans/{ADDRESS}"), json={"days": 1}, headers=auth()):
            pass
        async with http.get(admin_url(moderation, "/admin/stats"), headers=auth()) as response:
            stats = await response.json()

    assert stats["active_bans"] == 1
    assert stats["bans_created"] == 1
    assert all(isinstance(value, int) for value in stats.values())
    assert key_of(ADDRESS)[:8] not in json.dumps(stats)


async def test_admin_off_without_token(nats_broker: Broker) -> None:
    port = free_port()
    async with running_moderation(nats_broker.url, admin_token=None, admin_port=port) as moderation:
        assert moderation.admin_port == 0
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)


async def test_metrics_count_reports(nats_broker: Broker) -> None:
    async with running_moderation(nats_broker.url) as moderation, nats_client(nats_broker.url) as client:
        await publish_report(client, "198.51.100.1", ADDRESS, reason="nonsense")

        async def rejected() -> bool:
            return moderation.metrics.totals()["reports_rejected"] == 1

        await wait_until(rejected, what="report rejected")
        metrics_url = f"http://127.0.0.1:{moderation.http_port}/metrics"
        async with aiohttp.ClientSession() as http, http.get(metrics_url) as response:
            text = await response.text()

    assert 'calln_moderation_reports_rejected_total{reason="invalid_reason"} 1.0' in text
    assert "calln_moderation_reports_received_total 1.0" in text


# -- command-line client ----------------------------------------------------------------------


def run_cli(moderation: Moderation, *args: str, token: str = TEST_ADMIN_TOKEN) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ADMIN_TOKEN": token}
    url = f"http://127.0.0.1:{moderation.admin_port}"
    command = [sys.executable, CLI, "--url", url, *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=30, check=False)


async def test_cli_ban_lookup_erase(nats_broker: Broker) -> None:
    async with running_moderation(nats_broker.url) as moderation:
        banned = await asyncio.to_thread(run_cli, moderation, "ban", ADDRESS, "--days", "2", "--reason", "spam")
        assert banned.returncode == 0, banned.stderr
        assert json.loads(banned.stdout)["banned"] is True

        looked_up = await asyncio.to_thread(run_cli, moderation, "lookup", ADDRESS)
        assert json.loads(looked_up.stdout)["ban"]["reason"] == "spam"

        stats = await asyncio.to_thread(run_cli, moderation, "stats")
        assert json.loads(stats.stdout)["active_bans"] == 1

        erased = await asyncio.to_thread(run_cli, moderation, "erase", ADDRESS)
        assert erased.returncode == 0, erased.stderr
        assert await stored_ban(moderation, ADDRESS) is None


async def test_cli_reports_errors(nats_broker: Broker) -> None:
    async with running_moderation(nats_broker.url) as moderation:
        too_long = await asyncio.to_thread(run_cli, moderation, "ban", ADDRESS, "--days", "45")
        wrong_token = await asyncio.to_thread(run_cli, moderation, "stats", token="not-the-token-at-all")
        no_token = await asyncio.to_thread(run_cli, moderation, "stats", token="")

        assert too_long.returncode == 1
        assert "exceeds the maximum ban of 30 days" in too_long.stderr
        assert wrong_token.returncode == 1
        assert "HTTP 401" in wrong_token.stderr
        assert no_token.returncode == 2
        assert "ADMIN_TOKEN is not set" in no_token.stderr
        assert await stored_ban(moderation, ADDRESS) is None
