"""A first end-to-end flow on a real broker: join, match, chat, skip."""

from tests.support.client import Peer
from tests.support.stack import running_stack


async def test_two_peers_matched_and_chat(nats_broker):
    async with running_stack(nats_broker.url) as stack:
        alice, bob = Peer(stack.url(0)), Peer(stack.url(1))
        await alice.connect()
        await bob.connect()
        await alice.join()
        await bob.join()
        matched_a = await alice.next("matched")
        matched_b = await bob.next("matched")
        assert matched_a["call_id"] == matched_b["call_id"]
        assert {matched_a["role"], matched_b["role"]} == {"offerer", "answerer"}

        await alice.emit("chat", {"call_id": matched_a["call_id"], "text": "hi"})
        chat = await bob.next("chat")
        assert chat["text"] == "hi"
        await alice.close()
        await bob.close()
