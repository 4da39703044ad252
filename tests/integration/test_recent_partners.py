"""The recent-partner rule: two people who skip each other meet again only after both waited long."""

import time

import pytest

from tests.support.client import Peer
from tests.support.stack import running_stack

OVERRIDE_S = 1.5


async def matched_pair(alice: Peer, bob: Peer) -> str:
    call_a = await alice.next("matched", timeout_s=OVERRIDE_S + 3)
    call_b = await bob.next("matched", timeout_s=OVERRIDE_S + 3)
    assert call_a["call_id"] == call_b["call_id"]
    return call_a["call_id"]


async def test_two_person_pool_skipping(nats_broker):
    overrides = {"recent_override_after_s": OVERRIDE_S}
    async with running_stack(nats_broker.url, matcher_overrides=overrides) as stack:
        alice, bob = Peer(stack.url(0)), Peer(stack.url(1))
        await alice.connect()
        await bob.connect()
        await alice.join()
        await bob.join()
        call_ids = [await matched_pair(alice, bob)]

        for _round in range(3):
            await alice.emit("skip")
            await bob.next("partner_left")
            await alice.next("waiting")
            rejoined_at = time.monotonic()
            await bob.join()

            # Recent partners: no new call before both waited the override time.
            with pytest.raises(TimeoutError):
                await alice.next("matched", timeout_s=OVERRIDE_S * 0.5)
            call_ids.append(await matched_pair(alice, bob))
            assert time.monotonic() - rejoined_at >= OVERRIDE_S

        assert len(set(call_ids)) == len(call_ids)
        await alice.close()
        await bob.close()


async def test_newcomer_preferred_over_recent_partner(nats_broker):
    overrides = {"recent_override_after_s": 30.0}
    async with running_stack(nats_broker.url, matcher_overrides=overrides) as stack:
        alice, bob, carol = Peer(stack.url(0)), Peer(stack.url(1)), Peer(stack.url(1))
        for peer in (alice, bob, carol):
            await peer.connect()
        await alice.join()
        await bob.join()
        first = await matched_pair(alice, bob)

        await alice.emit("skip")
        await bob.next("partner_left")
        await bob.join()
        with pytest.raises(TimeoutError):
            await alice.next("matched", timeout_s=0.5)

        await carol.join()
        second = await alice.next("matched")
        assert second["call_id"] != first
        assert (await carol.next("matched"))["call_id"] == second["call_id"]
        assert bob.counts["matched"] == 1
        for peer in (alice, bob, carol):
            await peer.close()


async def test_same_browser_blocked_after_reconnect(nats_broker):
    """A partner who reconnects with the same browser id is still a recent partner."""
    overrides = {"recent_override_after_s": 30.0}
    async with running_stack(nats_broker.url, matcher_overrides=overrides) as stack:
        alice, bob = Peer(stack.url(0)), Peer(stack.url(1), browser_id="bob-browser-000001")
        await alice.connect()
        await bob.connect()
        await alice.join()
        await bob.join()
        await matched_pair(alice, bob)

        await alice.emit("skip")
        await bob.next("partner_left")
        await bob.close()
        bob_again = Peer(stack.url(1), browser_id="bob-browser-000001")
        await bob_again.connect()
        await bob_again.join()
        with pytest.raises(TimeoutError):
            await alice.next("matched", timeout_s=0.7)
        await alice.close()
        await bob_again.close()
