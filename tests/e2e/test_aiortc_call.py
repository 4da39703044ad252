"""Two real WebRTC peers (aiortc) matched through two gateway processes exchange audio."""

import asyncio

import pytest

from tests.support.client import Peer
from tests.support.stack import service_processes, spawn_stack
from tests.support.waiting import wait_until
from tests.support.webrtc import CallPeer, loopback_only_ice

MIN_FRAMES = 50
TONE_A_HZ = 440.0
TONE_B_HZ = 880.0


@pytest.mark.timeout(90)
async def test_aiortc_peers_talk_across_gateway_processes(nats_broker, tmp_path):
    with service_processes(str(tmp_path)) as processes:
        stack = await spawn_stack(nats_broker.url, str(tmp_path), processes)

        with loopback_only_ice():
            alice = Peer(stack.gateway_url(0))
            bob = Peer(stack.gateway_url(1))
            carol = Peer(stack.gateway_url(1))
            for client in (alice, bob, carol):
                await client.connect()
            await alice.join()
            await bob.join()
            matched_a, matched_b = await alice.next("matched"), await bob.next("matched")
            assert matched_a["call_id"] == matched_b["call_id"]

            peer_a, peer_b = CallPeer(alice, TONE_A_HZ), CallPeer(bob, TONE_B_HZ)
            try:
                await peer_a.start(matched_a)
                await peer_b.start(matched_b)
                await asyncio.wait_for(peer_a.connected.wait(), 20)
                await asyncio.wait_for(peer_b.connected.wait(), 20)
                await wait_until(
                    lambda: min(peer_a.frames_received, peer_b.frames_received) >= MIN_FRAMES,
                    20,
                    f"{MIN_FRAMES} audio frames on both sides",
                )

                assert peer_a.frames_received >= MIN_FRAMES
                assert peer_b.frames_received >= MIN_FRAMES
                assert abs(peer_a.heard_frequency() - TONE_B_HZ) < 30
                assert abs(peer_b.heard_frequency() - TONE_A_HZ) < 30
                assert peer_a.remote_candidates, "candidates were not trickled through the gateways"

                call_id = matched_a["call_id"]
                await alice.emit("chat", {"call_id": call_id, "text": "can you hear the tone?"})
                assert (await bob.next("chat"))["text"] == "can you hear the tone?"
                with pytest.raises(TimeoutError):
                    await carol.next("chat", timeout_s=0.5)
                assert carol.received("signal") == []

                await alice.emit("skip")
                assert (await bob.next("partner_left"))["reason"] == "skip"
                await alice.next("waiting")
            finally:
                await peer_a.close()
                await peer_b.close()
                for client in (alice, bob, carol):
                    await client.close()
