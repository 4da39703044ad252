"""Gateways hand each side its own TURN credentials and renew them before they expire."""

import base64
import hashlib
import hmac
import time

from shared.turn import TurnSettings
from tests.support.client import Peer
from tests.support.stack import running_stack

SECRET = b"turn-secret-for-tests-0123456789"
TURN = TurnSettings(urls=("turn:127.0.0.1:3478?transport=udp",), secret=SECRET, credential_lifetime_s=600)


def password_for(username: str) -> str:
    return base64.b64encode(hmac.new(SECRET, username.encode(), hashlib.sha1).digest()).decode()


async def test_each_side_gets_own_credentials_and_renewal(nats_broker):
    async with running_stack(nats_broker.url, gateway_overrides={"turn": TURN}) as stack:
        alice, bob = Peer(stack.url(0)), Peer(stack.url(1))
        await alice.connect()
        await bob.connect()
        await alice.join()
        await bob.join()
        servers_a = (await alice.next("matched"))["ice_servers"]
        servers_b = (await bob.next("matched"))["ice_servers"]

        assert servers_a[0]["urls"] == list(TURN.urls)
        assert servers_a[0]["username"] != servers_b[0]["username"]
        for server in (servers_a[0], servers_b[0]):
            assert server["credential"] == password_for(server["username"])
            expiry = int(server["username"].split(":")[0])
            assert 0 < expiry - time.time() <= 600
            assert alice.hello["session_id"] not in server["username"]

        # Nine minutes later the credentials are due for renewal; the gateway sends new ones.
        gateway = stack.gateways[0]
        gateway.core.clock_wall = lambda: time.time() + 540
        session = gateway.core.by_session[alice.hello["session_id"]]
        await gateway._renew_turn_credentials(session)
        renewed = await alice.next("ice_servers")
        new_username = renewed["ice_servers"][0]["username"]
        assert renewed["call_id"]
        assert new_username != servers_a[0]["username"]
        assert int(new_username.split(":")[0]) > int(servers_a[0]["username"].split(":")[0])
        assert bob.received("ice_servers") == []
        await alice.close()
        await bob.close()
