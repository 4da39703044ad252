"""Gateways re-send waiting entries, so people whose entries the matcher dropped still get paired."""

from tests.support.client import Peer
from tests.support.stack import running_stack
from tests.support.waiting import wait_until


async def test_dropped_entry_comes_back(nats_broker):
    async with running_stack(nats_broker.url, gateway_overrides={"rejoin_interval_s": 0.5}) as stack:
        alice, bob = Peer(stack.url(0)), Peer(stack.url(1))
        await alice.connect()
        await bob.connect()
        await alice.join()

        pairing = stack.matcher.pairing
        assert pairing is not None
        await wait_until(lambda: len(pairing.index) == 1, 5, "alice queued")
        # As if gw0 had been silent for three heartbeats: the matcher forgets its waiters.
        assert pairing.drop_gateway("gw0") == 1
        assert len(pairing.index) == 0

        await wait_until(lambda: len(pairing.index) == 1, 5, "alice re-sent by her gateway")
        await bob.join()
        assert (await alice.next("matched"))["call_id"] == (await bob.next("matched"))["call_id"]
        await alice.close()
        await bob.close()
