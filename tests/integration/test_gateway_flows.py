"""Call flows through real gateways, a real matcher and a real NATS broker."""

import asyncio
import itertools
import time

import pytest

from tests.support.client import Peer
from tests.support.stack import running_stack

# Public addresses used only as X-Forwarded-For data for the GeoIP lookup; no traffic goes there.
ADDRESS_OF = {"GB": "81.2.69.160", "DE": "5.9.0.1", "US": "8.8.8.8"}

TRUSTED_LOOPBACK = {"trusted_proxies": ("127.0.0.1",)}


def peer_from(stack, index: int, country: str | None = None, browser_id: str | None = None) -> Peer:
    headers = {"X-Forwarded-For": ADDRESS_OF[country]} if country else {}
    return Peer(stack.url(index), browser_id=browser_id, headers=headers)


async def connected(*peers: Peer) -> list[Peer]:
    for peer in peers:
        await peer.connect()
    return list(peers)


async def close_all(*peers: Peer) -> None:
    for peer in peers:
        await peer.close()


async def assert_no_event(peer: Peer, event: str, wait_s: float = 0.5) -> None:
    with pytest.raises(TimeoutError):
        await peer.next(event, timeout_s=wait_s)


async def test_hello_reports_session_and_country(nats_broker):
    async with running_stack(nats_broker.url, gateways=1, gateway_overrides=TRUSTED_LOOPBACK) as stack:
        local, british = await connected(peer_from(stack, 0), peer_from(stack, 0, "GB"))
        assert local.hello["country"] == "XX"
        assert british.hello["country"] == "GB"
        assert local.hello["session_id"] != british.hello["session_id"]
        assert local.hello["online"] >= 1
        await close_all(local, british)


async def test_relay_across_gateways_reaches_partner_only(nats_broker):
    async with running_stack(nats_broker.url) as stack:
        alice, bob, carol = await connected(peer_from(stack, 0), peer_from(stack, 1), peer_from(stack, 1))
        await alice.join()
        await bob.join()
        call = (await alice.next("matched"))["call_id"]
        await bob.next("matched")

        await alice.emit("chat", {"call_id": call, "text": "hello bob"})
        await alice.emit("typing", {"call_id": call})
        await bob.emit("signal", {"call_id": call, "kind": "candidate", "data": None})
        assert (await bob.next("chat")) == {"call_id": call, "text": "hello bob"}
        assert (await bob.next("typing")) == {"call_id": call}
        assert (await alice.next("signal"))["kind"] == "candidate"

        await assert_no_event(carol, "chat")
        assert carol.received("typing") == []
        assert carol.received("signal") == []
        await close_all(alice, bob, carol)


async def test_skip_ends_call_and_requeues_skipper(nats_broker):
    async with running_stack(nats_broker.url) as stack:
        alice, bob = await connected(peer_from(stack, 0), peer_from(stack, 1))
        await alice.join()
        await bob.join()
        call = (await alice.next("matched"))["call_id"]
        await bob.next("matched")

        await alice.emit("skip")
        left = await bob.next("partner_left")
        assert left == {"call_id": call, "reason": "skip"}
        await alice.next("waiting")

        # The old call is gone for both: relays naming it are rejected.
        await bob.emit("chat", {"call_id": call, "text": "still there?"})
        assert (await bob.next("error"))["code"] == "not_in_call"
        await close_all(alice, bob)


async def test_stop_ends_call_and_leaves_queue(nats_broker):
    async with running_stack(nats_broker.url) as stack:
        alice, bob = await connected(peer_from(stack, 0), peer_from(stack, 1))
        await alice.join()
        await bob.join()
        call = (await alice.next("matched"))["call_id"]
        await bob.next("matched")

        await bob.emit("stop")
        await bob.next("stopped")
        assert (await alice.next("partner_left"))["reason"] == "stop"

        # Bob stopped, so a newcomer is paired with nobody but Alice once she rejoins.
        carol = (await connected(peer_from(stack, 1)))[0]
        await carol.join()
        await assert_no_event(carol, "matched")
        await alice.join()
        assert (await carol.next("matched"))["call_id"] != call
        await close_all(alice, bob, carol)


async def test_stop_while_waiting_leaves_queue(nats_broker):
    async with running_stack(nats_broker.url) as stack:
        alice, bob = await connected(peer_from(stack, 0), peer_from(stack, 1))
        await alice.join()
        await alice.emit("stop")
        await alice.next("stopped")
        await bob.join()
        await assert_no_event(bob, "matched")
        assert alice.received("matched") == []
        await close_all(alice, bob)


async def test_disconnect_in_call_tells_partner_within_one_second(nats_broker):
    async with running_stack(nats_broker.url) as stack:
        alice, bob = await connected(peer_from(stack, 0), peer_from(stack, 1))
        await alice.join()
        await bob.join()
        await alice.next("matched")
        await bob.next("matched")

        started = time.monotonic()
        await alice.sio.disconnect()
        left = await bob.next("partner_left", timeout_s=1.0)
        assert left["reason"] == "disconnected"
        assert time.monotonic() - started < 1.0
        await close_all(bob)


async def test_waiters_keep_entries_when_one_leaves(nats_broker):
    async with running_stack(nats_broker.url, gateway_overrides=TRUSTED_LOOPBACK) as stack:
        # A cycle nobody can close: GB wants DE, DE wants US, US wants GB.
        gb_wants_de = peer_from(stack, 0, "GB")
        de_wants_us = peer_from(stack, 1, "DE")
        us_wants_gb = peer_from(stack, 0, "US")
        await connected(gb_wants_de, de_wants_us, us_wants_gb)
        await gb_wants_de.join("DE")
        await de_wants_us.join("US")
        await us_wants_gb.join("GB")
        await assert_no_event(gb_wants_de, "matched", wait_s=0.3)
        await us_wants_gb.sio.disconnect()

        # A German who wants anyone suits only the GB person.
        de_any = (await connected(peer_from(stack, 1, "DE")))[0]
        await de_any.join("any")
        matched = await de_any.next("matched")
        assert (await gb_wants_de.next("matched"))["call_id"] == matched["call_id"]
        assert matched["partner_country"] == "GB"

        # An American who wants Germans suits the DE person who wanted the US.
        us_wants_de = (await connected(peer_from(stack, 0, "US")))[0]
        await us_wants_de.join("DE")
        matched = await us_wants_de.next("matched")
        assert (await de_wants_us.next("matched"))["call_id"] == matched["call_id"]

        # The American who left would suit a British newcomer, but is never matched again.
        gb_any = (await connected(peer_from(stack, 1, "GB")))[0]
        await gb_any.join("any")
        await assert_no_event(gb_any, "matched")
        assert us_wants_gb.received("matched") == []
        await close_all(gb_wants_de, de_wants_us, de_any, us_wants_de, gb_any)


COUNTRY_CASES = [
    # (a's country, a wants, b's country, b wants, paired?)
    (a_country, a_wants, b_country, b_wants, (a_wants in ("any", b_country)) and (b_wants in ("any", a_country)))
    for a_country, b_country in (("GB", "DE"), ("GB", "GB"))
    for a_wants, b_wants in itertools.product(("any", "GB", "DE"), repeat=2)
]


@pytest.mark.parametrize(("a_country", "a_wants", "b_country", "b_wants", "paired"), COUNTRY_CASES)
async def test_country_filters_pair_only_compatible(nats_broker, a_country, a_wants, b_country, b_wants, paired):
    async with running_stack(nats_broker.url, gateways=1, gateway_overrides=TRUSTED_LOOPBACK) as stack:
        alice, bob = await connected(peer_from(stack, 0, a_country), peer_from(stack, 0, b_country))
        await alice.join(a_wants)
        await bob.join(b_wants)
        if paired:
            assert (await alice.next("matched"))["partner_country"] == b_country
            assert (await bob.next("matched"))["partner_country"] == a_country
        else:
            await assert_no_event(alice, "matched", wait_s=0.4)
            assert bob.received("matched") == []
        await close_all(alice, bob)


async def test_unknown_country_only_matches_any(nats_broker):
    async with running_stack(nats_broker.url, gateways=1, gateway_overrides=TRUSTED_LOOPBACK) as stack:
        local, british = await connected(peer_from(stack, 0), peer_from(stack, 0, "GB"))
        await local.join("any")
        await british.join("GB")
        await assert_no_event(local, "matched", wait_s=0.4)
        await british.join("any")
        assert (await local.next("matched"))["partner_country"] == "GB"
        await close_all(local, british)


async def test_same_browser_never_paired(nats_broker):
    async with running_stack(nats_broker.url) as stack:
        tab_one = peer_from(stack, 0, browser_id="same-browser-0001")
        tab_two = peer_from(stack, 1, browser_id="same-browser-0001")
        other = peer_from(stack, 1)
        await connected(tab_one, tab_two, other)
        await tab_one.join()
        await tab_two.join()
        await assert_no_event(tab_one, "matched")
        await other.join()
        first = await other.next("matched")
        call_ids = {event["call_id"] for peer in (tab_one, tab_two) for event in peer.received("matched")}
        assert call_ids == {first["call_id"]}
        await close_all(tab_one, tab_two, other)


async def test_same_address_different_browsers_paired(nats_broker):
    async with running_stack(nats_broker.url, gateways=1, gateway_overrides=TRUSTED_LOOPBACK) as stack:
        alice, bob = await connected(peer_from(stack, 0, "GB"), peer_from(stack, 0, "GB"))
        await alice.join()
        await bob.join()
        assert (await alice.next("matched"))["call_id"] == (await bob.next("matched"))["call_id"]
        await close_all(alice, bob)


async def test_repeated_join_is_one_entry(nats_broker):
    async with running_stack(nats_broker.url) as stack:
        alice, bob, carol = await connected(peer_from(stack, 0), peer_from(stack, 1), peer_from(stack, 1))
        for _ in range(3):
            await alice.join()
        deadline = time.monotonic() + 5
        while stack.matcher.pairing is None or len(stack.matcher.pairing.index) != 1:
            assert time.monotonic() < deadline, "alice's joins never reached the matcher"
            await asyncio.sleep(0.02)
        assert len(stack.matcher.pairing.index) == 1

        await bob.join()
        await carol.join()
        await alice.next("matched")
        await bob.next("matched")
        await assert_no_event(carol, "matched")
        await close_all(alice, bob, carol)


async def test_online_count_spans_gateways(nats_broker):
    async with running_stack(nats_broker.url) as stack:
        alice, bob, carol = await connected(peer_from(stack, 0), peer_from(stack, 1), peer_from(stack, 1))
        deadline = time.monotonic() + 5
        count = 0
        while count != 3:
            assert time.monotonic() < deadline, f"online count stayed at {count}"
            count = (await alice.next("online"))["count"]
        await close_all(alice, bob, carol)


async def test_origin_outside_allowlist_rejected(nats_broker):
    async with running_stack(nats_broker.url, gateways=1) as stack:
        stranger = Peer(stack.url(0), headers={"Origin": "http://evil.invalid"})
        with pytest.raises(Exception, match=r"(?i)connect|refused|403|400"):
            await stranger.connect()
        allowed = Peer(stack.url(0), headers={"Origin": "http://127.0.0.1:8080"})
        await allowed.connect()
        await close_all(allowed)
