"""One lost delivery never leaves anyone stuck; a dead gateway's waiters are never paired."""

import asyncio
import time

import pytest

from tests.support.client import Peer
from tests.support.stack import running_stack, service_processes, spawn_stack

TRUSTED_LOOPBACK = {"trusted_proxies": ("127.0.0.1",)}
GERMAN_ADDRESS = "5.9.0.1"  # X-Forwarded-For data for the GeoIP lookup only


async def test_dropped_matched_recovers_within_three_seconds(nats_broker):
    async with running_stack(nats_broker.url) as stack:
        alice, bob = Peer(stack.url(0)), Peer(stack.url(1))
        await alice.connect()
        await bob.connect()
        stack.gateways[1].deliveries.drop_next_matched = 1

        started = time.monotonic()
        await alice.join()
        await bob.join()
        first_a = await alice.next("matched", timeout_s=3.0)
        first_b = await bob.next("matched", timeout_s=3.0 - (time.monotonic() - started))
        assert first_a["call_id"] == first_b["call_id"]
        assert time.monotonic() - started < 3.0
        assert stack.gateways[1].deliveries.drop_next_matched == 0
        assert stack.matcher.metrics.requeues._value.get() == 1
        await alice.close()
        await bob.close()


async def test_lost_confirm_side_keeps_queue_position(nats_broker):
    async with running_stack(nats_broker.url, gateway_overrides=TRUSTED_LOOPBACK) as stack:
        early, late = Peer(stack.url(0)), Peer(stack.url(1))
        await early.connect()
        await late.connect()
        stack.gateways[1].deliveries.drop_next_matched = 1
        await early.join()
        await late.join()
        # While the proposal is open, a third person joins; after the timeout the early waiter,
        # back at its original place, is still first in line.
        third = Peer(stack.url(1))
        await third.connect()
        await third.join()
        matched = await early.next("matched", timeout_s=3.0)
        partner = await asyncio.wait_for(_first_matched(late, third), 3.0)
        assert partner["call_id"] == matched["call_id"]
        for peer in (early, late, third):
            await peer.close()


async def _first_matched(*peers: Peer) -> dict:
    while True:
        for peer in peers:
            if peer.events["matched"]:
                return peer.events["matched"][0]
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
@pytest.mark.timeout(60)
async def test_stopped_gateway_waiters_never_paired(nats_broker, tmp_path, how):
    with service_processes(str(tmp_path)) as processes:
        stack = await spawn_stack(
            nats_broker.url, str(tmp_path), processes, gateway_extra={"TRUSTED_PROXIES": "127.0.0.1"}
        )
        ports = [gateway.port for gateway in stack.gateways]
        doomed = stack.gateways[0]

        # Waiters on the doomed gateway who want Germans, and cannot pair among themselves.
        waiters = [Peer(f"http://127.0.0.1:{ports[0]}") for _ in range(3)]
        german = Peer(f"http://127.0.0.1:{ports[1]}", headers={"X-Forwarded-For": GERMAN_ADDRESS})
        fallback = Peer(f"http://127.0.0.1:{ports[1]}")
        try:
            for peer in waiters:
                await peer.connect()
                await peer.join("DE")
            await german.connect()
            await fallback.connect()

            if how == "sigterm":
                doomed.terminate()
            else:
                doomed.kill()
            # A German who wants anyone would suit every dead waiter, yet gets no call with them.
            await german.join("any")
            with pytest.raises(TimeoutError):
                await german.next("matched", timeout_s=2.5)

            # The German is still waiting and pairs with the next live person.
            await fallback.join("any")
            assert (await german.next("matched", timeout_s=4.0))["call_id"] == (await fallback.next("matched"))[
                "call_id"
            ]
        finally:
            for peer in (*waiters, german, fallback):
                await peer.close()


@pytest.mark.timeout(60)
async def test_killed_gateway_partner_told(nats_broker, tmp_path):
    with service_processes(str(tmp_path)) as processes:
        stack = await spawn_stack(nats_broker.url, str(tmp_path), processes, gateway_extra={"RESUME_GRACE_S": "0.5"})
        ports = [gateway.port for gateway in stack.gateways]

        survivor, victim = Peer(f"http://127.0.0.1:{ports[0]}"), Peer(f"http://127.0.0.1:{ports[1]}")
        try:
            await survivor.connect()
            await victim.connect()
            await survivor.join()
            await victim.join()
            call_id = (await survivor.next("matched"))["call_id"]

            stack.gateways[1].kill()
            left = await survivor.next("partner_left", timeout_s=5.0)
            assert left == {"call_id": call_id, "reason": "disconnected"}
            await survivor.join()
        finally:
            await survivor.close()
            await victim.close()
