"""Bad input from browsers gets an `error` event with a code, and the connection stays usable."""

import pytest

from tests.support.client import Peer
from tests.support.stack import running_stack


async def in_call(stack) -> tuple[Peer, Peer, str]:
    alice, bob = Peer(stack.url(0)), Peer(stack.url(1))
    await alice.connect()
    await bob.connect()
    await alice.join()
    await bob.join()
    call_id = (await alice.next("matched"))["call_id"]
    await bob.next("matched")
    return alice, bob, call_id


async def assert_still_usable(alice: Peer, bob: Peer, call_id: str) -> None:
    await alice.emit("chat", {"call_id": call_id, "text": "still works"})
    assert (await bob.next("chat"))["text"] == "still works"


BAD_EVENTS = [
    pytest.param("no_such_event", {"x": 1}, "unknown_event", id="unknown-event"),
    pytest.param("join", "DE", "invalid_payload", id="join-not-an-object"),
    pytest.param("join", {"country": 49}, "invalid_payload", id="join-country-number"),
    pytest.param("join", {"country": "Germany"}, "invalid_country", id="join-country-name"),
    pytest.param("join", {"country": "any", "widen": "yes"}, "invalid_payload", id="join-widen-string"),
    pytest.param("chat", {"call_id": 7, "text": "hi"}, "invalid_payload", id="chat-call-id-number"),
    pytest.param("chat", {"call_id": "CALL", "text": ["hi"]}, "invalid_payload", id="chat-text-list"),
    pytest.param("chat", {"call_id": "CALL", "text": "x" * 1001}, "too_large", id="chat-over-limit"),
    pytest.param(
        "signal",
        {"call_id": "CALL", "kind": "offer", "data": {"type": "offer", "sdp": "x" * 70000}},
        "too_large",
        id="signal-over-limit",
    ),
    pytest.param(
        "signal", {"call_id": "CALL", "kind": "bogus", "data": None}, "invalid_payload", id="signal-unknown-kind"
    ),
    pytest.param(
        "signal", {"call_id": "CALL", "kind": "offer", "data": "sdp"}, "invalid_payload", id="signal-offer-not-object"
    ),
    pytest.param("chat", {"call_id": "not-my-call", "text": "hi"}, "wrong_call", id="chat-foreign-call"),
    pytest.param(
        "signal", {"call_id": "not-my-call", "kind": "candidate", "data": None}, "wrong_call", id="signal-foreign-call"
    ),
    pytest.param("typing", {"call_id": "not-my-call"}, "wrong_call", id="typing-foreign-call"),
    pytest.param("join", {"country": "any"}, "already_in_call", id="join-during-call"),
    pytest.param("report", {"call_id": "CALL", "reason": "being rude"}, "invalid_reason", id="report-bad-reason"),
]


@pytest.mark.parametrize(("event", "payload", "code"), BAD_EVENTS)
async def test_bad_event_gets_error_code(nats_broker, event, payload, code):
    async with running_stack(nats_broker.url) as stack:
        alice, bob, call_id = await in_call(stack)
        if isinstance(payload, dict) and payload.get("call_id") == "CALL":
            payload = {**payload, "call_id": call_id}

        await alice.emit(event, payload)
        error = await alice.next("error")
        assert error["code"] == code
        assert error["message"]

        await assert_still_usable(alice, bob, call_id)
        assert bob.received("error") == []
        await alice.close()
        await bob.close()


async def test_events_outside_call_rejected(nats_broker):
    async with running_stack(nats_broker.url, gateways=1) as stack:
        loner = Peer(stack.url(0))
        await loner.connect()
        for event, payload in (
            ("chat", {"call_id": "abc", "text": "anyone?"}),
            ("typing", {"call_id": "abc"}),
            ("signal", {"call_id": "abc", "kind": "candidate", "data": None}),
            ("skip", None),
        ):
            await loner.emit(event, payload)
            assert (await loner.next("error"))["code"] == "not_in_call"

        await loner.join()
        await loner.close()


async def test_flood_is_rate_limited(nats_broker):
    async with running_stack(nats_broker.url, gateway_overrides={"events_per_second": 1.0, "event_burst": 5}) as stack:
        alice, bob, call_id = await in_call(stack)
        for _ in range(10):
            await alice.emit("typing", {"call_id": call_id})
        assert (await alice.next("error"))["code"] == "rate_limited"
        assert len(bob.received("typing")) <= 5
        await alice.close()
        await bob.close()


async def test_rejected_report_still_ends_call(nats_broker):
    """Two clients on one address cannot report each other, but the reporter still leaves the call."""
    async with running_stack(nats_broker.url) as stack:
        alice, bob, call_id = await in_call(stack)
        await alice.emit("report", {"call_id": call_id, "reason": "spam"})
        assert (await alice.next("error"))["code"] == "invalid_report"
        assert await bob.next("partner_left") == {"call_id": call_id, "reason": "ended"}
        assert alice.received("reported") == []

        await alice.join()
        await alice.close()
        await bob.close()
