"""SIGKILL the active matcher while people wait: a standby takes over and nobody is stuck."""

import asyncio
import time

import aiohttp
import pytest

from tests.support.client import Peer
from tests.support.stack import service_processes, spawn_stack

WAITING_CLIENTS = 200
CLIENTS_IN_CALLS = 20
FAILOVER_DEADLINE_S = 10.0


async def scrape(port: int) -> dict[str, float]:
    """Read a service's /metrics into {sample name with labels: value}."""
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


async def leader_index(ports: list[int]) -> int | None:
    for index, port in enumerate(ports):
        try:
            if (await scrape(port)).get("calln_matcher_is_leader") == 1.0:
                return index
        except aiohttp.ClientError:
            continue
    return None


async def wait_for_leader(ports: list[int], exclude: int | None = None, timeout_s: float = 15.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        index = await leader_index(ports)
        if index is not None and index != exclude:
            return index
        await asyncio.sleep(0.1)
    raise TimeoutError("no matcher became leader")


@pytest.mark.timeout(120)
async def test_standby_takes_over_after_sigkill(nats_broker, tmp_path):
    with service_processes(str(tmp_path)) as processes:
        stack = await spawn_stack(
            nats_broker.url, str(tmp_path), processes, matchers=2, matcher_extra={"LEASE_TTL_S": "3"}
        )
        matchers = stack.matchers
        matcher_ports = [matcher.port for matcher in matchers]
        gateway_ports = [gateway.port for gateway in stack.gateways]
        old_leader = await wait_for_leader(matcher_ports)

        # Pairs in calls before the failover, who must never get a second call.
        talkers = [Peer(f"http://127.0.0.1:{gateway_ports[i % 2]}") for i in range(CLIENTS_IN_CALLS)]
        # Waiting people nobody can match: their own country is XX and each wants Germany.
        waiters = [Peer(f"http://127.0.0.1:{gateway_ports[i % 2]}") for i in range(WAITING_CLIENTS)]
        everyone = talkers + waiters
        try:
            await asyncio.gather(*(peer.connect() for peer in everyone))
            for peer in talkers:
                await peer.join("any")
            await asyncio.gather(*(peer.next("matched") for peer in talkers))
            await asyncio.gather(*(peer.join("DE") for peer in waiters))

            deadline = time.monotonic() + 10
            while (await scrape(matcher_ports[old_leader])).get('calln_matcher_queue_length{country="XX"}') != 200:
                assert time.monotonic() < deadline, "the first leader never saw all waiters"
                await asyncio.sleep(0.1)

            matchers[old_leader].kill()
            killed_at = time.monotonic()
            new_leader = await wait_for_leader(matcher_ports, exclude=old_leader)
            while (await scrape(matcher_ports[new_leader])).get('calln_matcher_queue_length{country="XX"}') != 200:
                assert time.monotonic() - killed_at < FAILOVER_DEADLINE_S, "waiters were not re-submitted in time"
                await asyncio.sleep(0.1)
            assert time.monotonic() - killed_at < FAILOVER_DEADLINE_S

            # The new leader pairs people: two newcomers who want anyone find each other.
            newcomers = [Peer(f"http://127.0.0.1:{port}") for port in gateway_ports]
            everyone += newcomers
            for peer in newcomers:
                await peer.connect()
                await peer.join("any")
            calls = [await peer.next("matched") for peer in newcomers]
            assert calls[0]["call_id"] == calls[1]["call_id"]

            for peer in everyone:
                assert peer.counts["matched"] <= 1, "a session got a second call"
            for peer in talkers:
                assert peer.counts["matched"] == 1
            for peer in waiters:
                assert peer.counts["matched"] == 0
        finally:
            await asyncio.gather(*(peer.close() for peer in everyone), return_exceptions=True)
