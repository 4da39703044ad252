"""Two real WebRTC peers (aiortc) matched through two gateway processes exchange audio."""

import asyncio
import time

import pytest

from tests.support.client import Peer
from tests.support.nats_server import free_port
from tests.support.stack import gateway_env, matcher_env, service_processes, spawn_service, wait_ready
from tests.support.webrtc import CallPeer, loopback_only_ice

MIN_FRAMES = 50
TONE_A_HZ = 440.0
TONE_B_HZ = 880.0


async def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout_s} s")
        await asyncio.sleep(0.05)


@pytest.mark.timeout(90)
async def test_aiortc_peers_talk_across_gateway_processes(nats_broker, tmp_path):
    with service_processes(str(tmp_path)) as processes:
        matcher_port = free_port()
        processes.append(
            spawn_service(
                "services.matcher",
                matcher_env(nats_broker.url, "m1", matcher_port),
                str(tmp_path / "matcher.log"),
                matcher_port,
                "matcher",
            )
        )
        for index in range(2):
            port = free_port()
            processes.append(
                spawn_service(
                    "services.signalling",
                    gateway_env(nats_broker.url, f"gw{index}", port),
                    str(tmp_path / f"gw{index}.log"),
                    port,
                    f"gw{index}",
                )
            )
        for process in processes:
            await wait_ready(process.port, process=process)

        with loopback_only_ice():
            alice = Peer(f"http://127.0.0.1:{processes[1].port}")
            bob = Peer(f"http://127.0.0.1:{processes[2].port}")
            carol = Peer(f"http://127.0.0.1:{processes[2].port}")
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
