"""Malformed NATS payloads are logged and counted, and every service keeps working."""

import asyncio
import time

import msgpack
import nats
import pytest

from shared import subjects
from shared.codec import MAX_PAYLOAD_BYTES
from tests.support.client import Peer
from tests.support.stack import running_stack

GARBAGE = [
    pytest.param(b"\xc1\xff not msgpack", id="invalid-bytes"),
    pytest.param(msgpack.packb([99, "match.join", {}]), id="unknown-version"),
    pytest.param(msgpack.packb([1, "match.join", {"session_id": 5}]), id="wrong-types"),
    pytest.param(b"\x00" * (MAX_PAYLOAD_BYTES + 1), id="oversized"),
]

MATCHER_SUBJECTS = [subjects.MATCH_JOIN, subjects.MATCH_LEAVE, subjects.MATCH_CONFIRM, subjects.GATEWAY_HEARTBEAT]
GATEWAY_KINDS = [subjects.GW_MATCHED, subjects.GW_START, subjects.GW_RELAY, subjects.GW_ENDED, subjects.GW_MOVED]


def rejected_total(registry) -> float:
    total = 0.0
    for metric in registry.collect():
        if metric.name == "calln_nats_rejected":
            total += sum(sample.value for sample in metric.samples if sample.name.endswith("_total"))
    return total


async def wait_for_count(registry, expected: float, timeout_s: float = 5.0) -> float:
    deadline = time.monotonic() + timeout_s
    while (count := rejected_total(registry)) < expected:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    return count


async def pair_two(stack) -> None:
    alice, bob = Peer(stack.url(0)), Peer(stack.url(1))
    await alice.connect()
    await bob.connect()
    await alice.join()
    await bob.join()
    assert (await alice.next("matched"))["call_id"] == (await bob.next("matched"))["call_id"]
    await alice.close()
    await bob.close()


@pytest.mark.parametrize("payload", GARBAGE)
async def test_garbage_counted_and_services_survive(nats_broker, payload):
    async with running_stack(nats_broker.url) as stack:
        client = await nats.connect(nats_broker.url)
        try:
            for subject in MATCHER_SUBJECTS:
                await client.publish(subject, payload)
            for kind in GATEWAY_KINDS:
                await client.publish(subjects.gateway_subject("gw0", kind), payload)
            await client.publish(subjects.MATCH_EPOCH, payload)
            await client.flush()
        finally:
            await client.close()

        matcher_registry = stack.matcher.metrics.registry
        gateway_registry = stack.gateways[0].metrics.registry
        assert await wait_for_count(matcher_registry, len(MATCHER_SUBJECTS)) >= len(MATCHER_SUBJECTS)
        # gw0 rejects its five deliveries and the epoch announcement; the heartbeat subject too.
        assert await wait_for_count(gateway_registry, len(GATEWAY_KINDS) + 2) >= len(GATEWAY_KINDS) + 2

        await pair_two(stack)


async def test_unknown_delivery_kind_counted(nats_broker):
    async with running_stack(nats_broker.url, gateways=1) as stack:
        client = await nats.connect(nats_broker.url)
        try:
            await client.publish("gw.gw0.no_such_kind", b"\x90")
            await client.flush()
        finally:
            await client.close()
        assert await wait_for_count(stack.gateways[0].metrics.registry, 1) >= 1
