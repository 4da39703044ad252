"""Resume tokens: a moved session keeps its place; unknown or expired tokens start afresh."""

import time

from services.signalling.resume import issue_token, token_key, verify_token
from shared.settings import read_ip_key_secret
from tests.support.client import Peer
from tests.support.stack import running_stack

TRUSTED_LOOPBACK = {"trusted_proxies": ("127.0.0.1",)}
ADDRESS_OF = {"GB": "81.2.69.160", "DE": "5.9.0.1", "US": "8.8.8.8"}  # GeoIP data only


def peer(url: str, country: str) -> Peer:
    return Peer(url, headers={"X-Forwarded-For": ADDRESS_OF[country]})


async def test_waiting_client_keeps_place_after_move(nats_broker):
    async with running_stack(nats_broker.url, gateways=3, gateway_overrides=TRUSTED_LOOPBACK) as stack:
        older, newer = peer(stack.url(0), "GB"), peer(stack.url(1), "US")
        await older.connect()
        await newer.connect()
        await older.join("DE")
        await newer.join("DE")

        draining = stack.gateways[0]
        drain = draining.core.sio.start_background_task(draining.drain)
        await older.next("reconnect")
        hello = await older.move_to(stack.url(2))
        await drain
        assert hello["resumed"] == {"state": "waiting"}
        assert hello["session_id"] == older.hello["session_id"]

        german = peer(stack.url(1), "DE")
        await german.connect()
        await german.join("any")
        matched = await german.next("matched")
        assert matched["partner_country"] == "GB"
        assert (await older.next("matched"))["call_id"] == matched["call_id"]
        assert newer.counts["matched"] == 0
        for client in (older, newer, german):
            await client.close()


async def test_garbage_token_starts_fresh_session(nats_broker):
    async with running_stack(nats_broker.url, gateways=1) as stack:
        client = Peer(stack.url(0))
        client.auth = {"browser_id": client.browser_id, "resume_token": "not.a-token"}
        hello = await client.connect()
        assert "resumed" not in hello
        assert hello["resume_token"]
        await client.join()
        await client.close()


async def test_expired_token_starts_fresh_session(nats_broker):
    async with running_stack(nats_broker.url, gateways=2) as stack:
        client = Peer(stack.url(0))
        first = await client.connect()
        await client.join()
        expired = issue_token(token_key(read_ip_key_secret()), first["session_id"], client.browser_id, time.time() - 1)
        client.resume_token = expired
        hello = await client.move_to(stack.url(1))
        assert "resumed" not in hello
        assert hello["session_id"] != first["session_id"]
        await client.close()


def test_token_bound_to_browser_and_secret():
    key = token_key(b"0123456789abcdef-secret")
    token = issue_token(key, "session-1", "browser-aaaaaaaaaaaa", time.time() + 60)
    assert verify_token(key, token, "browser-aaaaaaaaaaaa") == "session-1"
    assert verify_token(key, token, "browser-bbbbbbbbbbbb") is None
    assert verify_token(token_key(b"another-secret-0123456"), token, "browser-aaaaaaaaaaaa") is None
    payload, _, signature = token.partition(".")
    assert verify_token(key, payload + "." + signature[::-1], "browser-aaaaaaaaaaaa") is None
    assert verify_token(key, 42, "browser-aaaaaaaaaaaa") is None


async def test_token_from_previous_secret_resumes(nats_broker):
    old_secret = b"an-older-secret-0123456789"
    overrides = {"previous_ip_key_secret": old_secret}
    async with running_stack(nats_broker.url, gateways=2, gateway_overrides=overrides) as stack:
        client = Peer(stack.url(0))
        first = await client.connect()
        await client.join()
        client.resume_token = issue_token(
            token_key(old_secret), first["session_id"], client.browser_id, time.time() + 60
        )

        drain = stack.gateways[0].core.sio.start_background_task(stack.gateways[0].drain)
        await client.next("reconnect")
        hello = await client.move_to(stack.url(1))
        await drain
        assert hello["resumed"] == {"state": "waiting"}
        assert hello["session_id"] == first["session_id"]
        await client.close()
