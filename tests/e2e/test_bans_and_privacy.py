"""Bans and privacy end to end: matcher, two gateways and moderation as processes on real NATS.

Clients get distinct addresses through X-Forwarded-For from a trusted proxy (127.0.0.1). The
addresses are TEST-NET and documentation ranges, used only as header data.
"""

import asyncio
import ipaddress
import os
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from nats.js.errors import NotFoundError

from services.signalling.bans import BanCache
from shared import subjects
from shared.bans import open_bans_bucket
from shared.codec import encode
from shared.events import ModerationReport
from shared.ipkey import ip_key, normalize_address, short_key
from tests.support.client import Peer
from tests.support.moderation import TEST_ADMIN_TOKEN, nats_client
from tests.support.nats_server import Broker, free_port
from tests.support.stack import (
    ServiceProcess,
    gateway_env,
    matcher_env,
    service_processes,
    spawn_service,
    wait_ready,
)
from tests.support.waiting import wait_until

SECRET = os.environ["IP_KEY_SECRET"].encode()
TARGET = "203.0.113.10"
REPORTERS = ("198.51.100.1", "198.51.100.2", "198.51.100.3")
BYSTANDER = "198.51.100.40"
REPORTS_PER_HOUR = 5

# A new ban must end live sessions on every gateway within one second.
BAN_DEADLINE_S = 1.0

# Seconds a test waits for a match; the matcher pairs two lone waiters within a tick.
MATCH_WAIT_S = 10.0

pytestmark = pytest.mark.timeout(180)


@dataclass
class System:
    """The running processes and how to reach them."""

    nats_url: str
    gateways: list[str]
    moderation_http_port: int
    admin_port: int
    log_dir: Path
    output_dir: Path
    processes: list[ServiceProcess]
    peers: list[Peer] = field(default_factory=list)

    def admin_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.admin_port}{path}"

    async def connect(self, gateway: int, address: str) -> Peer:
        """Connect a client to gateway 0 or 1 from `address`; it is closed when the system stops."""
        peer = client(self.gateways[gateway], address)
        self.peers.append(peer)
        await peer.connect()
        return peer

    async def close_peers(self) -> None:
        for peer in self.peers:
            await peer.close()


@pytest.fixture
def system_dirs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    log_dir = tmp_path / "logs"
    output_dir = tmp_path / "output"
    log_dir.mkdir()
    output_dir.mkdir()
    yield log_dir, output_dir


@asynccontextmanager
async def running_system(nats_url: str, log_dir: Path, output_dir: Path) -> AsyncIterator[System]:
    """Start a matcher, two gateways and moderation, each writing daily logs to `log_dir`."""
    shared_env = {"LOG_DIR": str(log_dir), "REPORTS_PER_HOUR": str(REPORTS_PER_HOUR)}
    # The 50-report test sends about 150 events from one session; the general event limit is
    # raised so that only the report limit is under test.
    event_limits = {"EVENTS_PER_SECOND": "200", "EVENT_BURST": "500"}
    with service_processes(str(output_dir)) as processes:
        matcher_port = free_port()
        processes.append(
            spawn_service(
                "services.matcher",
                matcher_env(nats_url, "m1", matcher_port, **shared_env),
                str(output_dir / "matcher.out"),
                matcher_port,
                "matcher",
            )
        )
        gateway_ports = [free_port(), free_port()]
        for index, port in enumerate(gateway_ports):
            env = gateway_env(nats_url, f"gw{index}", port, TRUSTED_PROXIES="127.0.0.1", **shared_env, **event_limits)
            processes.append(
                spawn_service("services.signalling", env, str(output_dir / f"gw{index}.out"), port, f"gw{index}")
            )
        moderation_port, admin_port = free_port(), free_port()
        moderation_env = {
            "NATS_URL": nats_url,
            "MODERATION_HTTP_PORT": str(moderation_port),
            "ADMIN_PORT": str(admin_port),
            "ADMIN_TOKEN": TEST_ADMIN_TOKEN,
            **shared_env,
        }
        processes.append(
            spawn_service(
                "services.moderation", moderation_env, str(output_dir / "moderation.out"), moderation_port, "moderation"
            )
        )
        for process in processes:
            await wait_ready(process.port, process=process)

        gateways = [f"http://127.0.0.1:{port}" for port in gateway_ports]
        system = System(nats_url, gateways, moderation_port, admin_port, log_dir, output_dir, processes)
        try:
            yield system
        finally:
            await system.close_peers()


@pytest.fixture
async def system(nats_broker: Broker, system_dirs: tuple[Path, Path]) -> AsyncIterator[System]:
    log_dir, output_dir = system_dirs
    async with running_system(nats_broker.url, log_dir, output_dir) as running:
        yield running


def client(url: str, address: str) -> Peer:
    return Peer(url, headers={"X-Forwarded-For": address})


async def call_between(first: Peer, second: Peer) -> str:
    """Put both peers in the queue and return the call id the matcher gave them."""
    await first.join()
    await second.join()
    first_match = await first.next("matched", MATCH_WAIT_S)
    second_match = await second.next("matched", MATCH_WAIT_S)
    assert first_match["call_id"] == second_match["call_id"]
    return str(first_match["call_id"])


async def connection_refusal(url: str, address: str) -> dict[str, Any]:
    """Connect from a banned address and return the `banned` payload; fail if a session starts.

    The gateway accepts the transport first (python-socketio's `always_connect`), sends
    `banned {until}` and closes the connection. A refusal during the handshake counts too.
    """
    peer = client(url, address)
    refusals: list[Any] = []

    async def on_connect_error(data: Any = None) -> None:
        refusals.append(data)

    peer.sio.on("connect_error", on_connect_error)
    try:
        await peer.sio.connect(url, transports=["websocket"], auth=peer.auth, headers=peer.headers, wait_timeout=5)
    except socketio.exceptions.ConnectionError:
        assert refusals and isinstance(refusals[0], dict), f"{url} refused without a reason"
        return dict(refusals[0])
    try:
        banned = await peer.next("banned")
        assert await disconnected(peer, time.monotonic() + 5.0), f"{url} kept a banned connection open"
        assert peer.received("hello") == [], f"{url} started a session for a banned address"
        return dict(banned)
    finally:
        await peer.close()


async def metric(port: int, line_prefix: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(line_prefix + " ")]
    return values[0] if values else 0.0


async def admin(system: System, method: str, path: str, body: object = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, system.admin_url(path), json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


@asynccontextmanager
async def ban_watch(nats_url: str) -> AsyncIterator[dict[str, float]]:
    """Record, per ip_key, the monotonic time at which this test saw a ban arrive in the bucket."""
    seen_at: dict[str, float] = {}

    async def on_ban(key: str, _until: float) -> None:
        seen_at.setdefault(key, time.monotonic())

    async with nats_client(nats_url) as nats:
        cache = BanCache(await open_bans_bucket(nats.jetstream()), on_ban=on_ban)
        await cache.start(timeout_s=5.0)
        try:
            yield seen_at
        finally:
            await cache.close()


async def disconnected(peer: Peer, deadline: float) -> bool:
    while peer.sio.connected:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


# -- bans -----------------------------------------------------------------------------------------


async def test_three_reporters_ban_everywhere(system: System) -> None:
    target = await system.connect(1, TARGET)
    target_key = ip_key(SECRET, TARGET)

    async with ban_watch(system.nats_url) as ban_seen_at:
        for index, address in enumerate(REPORTERS):
            reporter = await system.connect(0, address)
            call_id = await call_between(target, reporter)
            await reporter.emit("report", {"call_id": call_id, "reason": "harassment"})
            await reporter.next("reported")
            await reporter.close()
            if index < len(REPORTERS) - 1:
                assert (await target.next("partner_left"))["call_id"] == call_id

        async def ban_arrived() -> bool:
            return target_key in ban_seen_at

        await wait_until(ban_arrived, timeout_s=5.0, what="ban stored after the third report")
        deadline = ban_seen_at[target_key] + BAN_DEADLINE_S

        banned = await target.next("banned", timeout_s=max(0.0, deadline - time.monotonic()))
        assert banned["until"] > time.time()
        assert await disconnected(target, deadline), "banned session still open one second after the ban"

    for url in system.gateways:
        refusal = await connection_refusal(url, TARGET)
        assert refusal["until"] > time.time()

    status, erased = await admin(system, "DELETE", f"/admin/bans/{TARGET}")
    assert status == 200
    assert erased["erased"] is True

    for url in system.gateways:

        async def accepted(gateway: str = url) -> bool:
            peer = client(gateway, TARGET)
            try:
                await peer.connect()
            except (socketio.exceptions.ConnectionError, TimeoutError):
                return False
            await peer.close()
            return True

        await wait_until(accepted, timeout_s=5.0, what=f"erased address accepted by {url}")


async def test_admin_ban_ends_live_call(system: System) -> None:
    target = await system.connect(1, TARGET)
    partner = await system.connect(0, BYSTANDER)
    call_id = await call_between(target, partner)

    async with ban_watch(system.nats_url) as ban_seen_at:
        status, _body = await admin(system, "PUT", f"/admin/bans/{TARGET}", {"days": 1, "reason": "spam"})
        assert status == 200

        async def ban_arrived() -> bool:
            return ip_key(SECRET, TARGET) in ban_seen_at

        await wait_until(ban_arrived, timeout_s=5.0, what="admin ban in the bucket")
        deadline = ban_seen_at[ip_key(SECRET, TARGET)] + BAN_DEADLINE_S

        await target.next("banned", timeout_s=max(0.0, deadline - time.monotonic()))
        assert await disconnected(target, deadline)
        left = await partner.next("partner_left", timeout_s=max(0.0, deadline - time.monotonic()) + 1.0)
        assert left["call_id"] == call_id
        assert left["reason"] == "banned"


async def test_banned_key_report_rejected(system: System) -> None:
    status, _body = await admin(system, "PUT", f"/admin/bans/{TARGET}", {"days": 1})
    assert status == 200
    report = ModerationReport("call-x", ip_key(SECRET, TARGET), ip_key(SECRET, BYSTANDER), "spam")

    async with nats_client(system.nats_url) as nats:
        await nats.publish(subjects.MODERATION_REPORT, encode(report))
        await nats.flush()

    rejected = 'calln_moderation_reports_rejected_total{reason="reporter_banned"}'

    async def counted() -> bool:
        return await metric(system.moderation_http_port, rejected) == 1.0

    await wait_until(counted, timeout_s=5.0, what="report from a banned key rejected")
    status, lookup = await admin(system, "GET", f"/admin/bans/{BYSTANDER}")
    assert lookup["reports_in_window"] == 0


async def test_non_partner_reports_rejected(system: System) -> None:
    alice = await system.connect(0, REPORTERS[0])
    bob = await system.connect(1, REPORTERS[1])
    carol = await system.connect(0, REPORTERS[2])
    call_id = await call_between(alice, bob)

    await carol.emit("report", {"call_id": call_id, "reason": "spam"})
    carol_error = await carol.next("error")
    await alice.emit("report", {"call_id": "not-this-call", "reason": "spam"})
    alice_error = await alice.next("error")
    await alice.emit("report", {"call_id": call_id, "reason": "boring"})
    reason_error = await alice.next("error")

    assert carol_error["code"] == "invalid_report"
    assert alice_error["code"] == "invalid_report"
    assert reason_error["code"] == "invalid_reason"
    assert await metric(system.moderation_http_port, "calln_moderation_reports_received_total") == 0.0


@pytest.mark.slow
async def test_one_reporter_bans_nobody(system: System) -> None:
    reporter = await system.connect(0, "198.51.100.200")
    rate_limited = 0

    for index in range(50):
        partner = await system.connect(index % 2, f"198.51.100.{100 + index}")
        call_id = await call_between(reporter, partner)
        await reporter.emit("report", {"call_id": call_id, "reason": "spam"})
        if index < REPORTS_PER_HOUR:
            await reporter.next("reported")
        else:
            error = await reporter.next("error")
            assert error["code"] == "rate_limited", error
            rate_limited += 1
            await reporter.emit("stop")
            await reporter.next("stopped")
        await partner.next("partner_left")
        await partner.close()

    async def all_reports_handled() -> bool:
        return await metric(system.moderation_http_port, "calln_moderation_reports_received_total") == REPORTS_PER_HOUR

    await wait_until(all_reports_handled, timeout_s=5.0, what="five reports handled by moderation")
    status, stats = await admin(system, "GET", "/admin/stats")
    assert status == 200
    assert rate_limited == 50 - REPORTS_PER_HOUR
    assert stats["active_bans"] == 0
    assert stats["bans_created"] == 0


# -- privacy canary -------------------------------------------------------------------------------

CANARY_ADDRESSES = ("203.0.113.99", "2001:db8:99:1::99")


def address_forms(address: str) -> set[str]:
    """Spell an address every way a log line or payload might: compressed, exploded, its /64."""
    parsed = ipaddress.ip_address(address)
    forms = {str(parsed), parsed.exploded, normalize_address(address)}
    if isinstance(parsed, ipaddress.IPv6Address):
        forms.add(str(ipaddress.IPv6Network((parsed, 64), strict=False).network_address))
    return forms


async def stream_contents(nats_url: str) -> dict[str, bytes]:
    """Read every message of every JetStream stream: subject, headers and data, by stream name."""
    contents: dict[str, bytes] = {}
    async with nats_client(nats_url) as nats:
        js = nats.jetstream()
        for info in await js.streams_info():
            name = info.config.name
            assert name is not None
            parts: list[bytes] = []
            first = max(info.state.first_seq, 1)
            last = info.state.last_seq if info.state.messages else 0
            for sequence in range(first, last + 1):
                try:
                    message = await js.get_msg(name, sequence)
                except NotFoundError:
                    continue
                parts.append((message.subject or "").encode())
                parts.append(repr(message.headers or {}).encode())
                parts.append(message.data or b"")
            contents[name] = b"\n".join(parts)
    return contents


async def test_privacy_canary(nats_broker: Broker, system_dirs: tuple[Path, Path]) -> None:
    log_dir, output_dir = system_dirs
    canary_text = "canary-" + secrets.token_hex(8)

    async with running_system(nats_broker.url, log_dir, output_dir) as system:
        alice = await system.connect(0, CANARY_ADDRESSES[0])
        bob = await system.connect(1, CANARY_ADDRESSES[1])
        call_id = await call_between(alice, bob)

        await alice.emit("chat", {"call_id": call_id, "text": canary_text})
        assert (await bob.next("chat"))["text"] == canary_text
        await bob.emit("chat", {"call_id": call_id, "text": canary_text + "-reply"})
        assert (await alice.next("chat"))["text"] == canary_text + "-reply"
        await alice.emit("report", {"call_id": call_id, "reason": "spam"})
        await alice.next("reported")
        await bob.next("partner_left")

        async def report_stored() -> bool:
            return await metric(system.moderation_http_port, "calln_moderation_reports_received_total") == 1.0

        await wait_until(report_stored, timeout_s=5.0, what="canary report handled")
        await alice.close()
        await bob.close()
        for process in system.processes:
            assert process.terminate() == 0, process.log_text()[-2000:]

        streams = await stream_contents(nats_broker.url)

    forbidden_everywhere = {canary_text}
    for address in CANARY_ADDRESSES:
        forbidden_everywhere |= address_forms(address)
    full_keys = {ip_key(SECRET, address) for address in CANARY_ADDRESSES}

    log_files = sorted(log_dir.iterdir())
    assert {path.name.split("-")[0] for path in log_files} >= {"gateway", "matcher", "moderation"}
    all_logs = ""
    for path in [*log_files, *sorted(output_dir.iterdir())]:
        text = path.read_text(encoding="utf-8", errors="replace")
        all_logs += text
        for needle in forbidden_everywhere | full_keys:
            assert needle not in text, f"{needle!r} found in {path.name}"
    # The logs do follow these sessions, by the short key prefix that logs may carry.
    assert all(short_key(key) in all_logs for key in full_keys)

    assert "KV_bans" in streams
    assert streams["KV_report_counts"], "the canary report left no tally to search"
    for name, content in streams.items():
        for needle in forbidden_everywhere:
            assert needle.encode() not in content, f"{needle!r} found in stream {name}"
