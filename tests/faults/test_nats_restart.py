"""Restarting the NATS broker leaves nobody stuck: calls relay again and new people get paired."""

import time

import pytest

from tests.support.client import Peer
from tests.support.stack import running_stack


async def eventually(action, timeout_s: float, what: str):
    """Retry `action` until it returns without TimeoutError; the broker may still be reconnecting."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await action()
        except TimeoutError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not recover within {timeout_s} s") from None


@pytest.mark.timeout(90)
async def test_broker_restart_recovers(own_broker):
    async with running_stack(own_broker.url) as stack:
        alice, bob, carol = Peer(stack.url(0)), Peer(stack.url(1)), Peer(stack.url(1))
        for peer in (alice, bob, carol):
            await peer.connect()
        await alice.join()
        await bob.join()
        call_id = (await alice.next("matched"))["call_id"]
        await bob.next("matched")
        await carol.join("DE")

        own_broker.stop()
        own_broker.start()

        async def chat_round_trip() -> None:
            await alice.emit("chat", {"call_id": call_id, "text": "are you still there?"})
            assert (await bob.next("chat", timeout_s=1.0))["text"] == "are you still there?"

        await eventually(chat_round_trip, 20, "chat relay")

        dave, erin = Peer(stack.url(0)), Peer(stack.url(1))
        await dave.connect()
        await erin.connect()
        await dave.join()
        await erin.join()
        paired = await eventually(lambda: dave.next("matched", timeout_s=1.0), 20, "pairing")
        assert (await erin.next("matched"))["call_id"] == paired["call_id"]
        # The lease survives a broker restart because its bucket is on disk.
        assert stack.matcher.is_leader
        for peer in (alice, bob, carol, dave, erin):
            assert peer.counts["matched"] <= 1
            await peer.close()
        assert carol.counts["matched"] == 0
