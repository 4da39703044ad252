"""Stopping a gateway drops no call: clients resume on other gateways and audio keeps flowing."""

import asyncio
import time

import pytest

from tests.support.client import Peer
from tests.support.stack import ServiceProcess, service_processes, spawn_gateway, spawn_stack
from tests.support.waiting import wait_until
from tests.support.webrtc import CallPeer, loopback_only_ice

CALLS = 10
WAITING = 10
MOVE_DEADLINE_S = 5.0
MORE_FRAMES = 50


def url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


GATEWAY_EXTRA = {"DRAIN_TIMEOUT_S": "5", "RESUME_GRACE_S": "3"}


async def start_gateway(nats_url: str, tmp_path, name: str, port: int) -> ServiceProcess:
    return await spawn_gateway(nats_url, str(tmp_path), name, port, GATEWAY_EXTRA)


class Scene:
    """Calls with real audio and people waiting, spread over gateways."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.talkers = [Peer(url(ports[i % len(ports)])) for i in range(CALLS * 2)]
        self.waiters = [Peer(url(ports[i % len(ports)])) for i in range(WAITING)]
        self.calls: list[tuple[CallPeer, CallPeer]] = []

    @property
    def everyone(self) -> list[Peer]:
        return self.talkers + self.waiters

    async def set_up(self) -> None:
        await asyncio.gather(*(peer.connect() for peer in self.everyone))
        for first, second in zip(self.talkers[::2], self.talkers[1::2], strict=True):
            await first.join()
            await second.join()
            matched = [await first.next("matched"), await second.next("matched")]
            assert matched[0]["call_id"] == matched[1]["call_id"]
            pair = (CallPeer(first, 300 + 20 * len(self.calls)), CallPeer(second, 900 + 20 * len(self.calls)))
            for peer, event in zip(pair, matched, strict=True):
                await peer.start(event)
            self.calls.append(pair)
        for peer in self.waiters:
            await peer.join("DE")
        for pair in self.calls:
            for peer in pair:
                await asyncio.wait_for(peer.connected.wait(), 30)

    async def move_off(self, port: int, targets: list[int]) -> list[Peer]:
        """Answer `reconnect` hints from the gateway on `port` by resuming on the targets."""
        leaving = [peer for peer in self.everyone if peer.url == url(port)]
        for peer in leaving:
            await peer.next("reconnect", timeout_s=MOVE_DEADLINE_S)
        hellos = await asyncio.gather(*(peer.move_to(url(targets[i % len(targets)])) for i, peer in enumerate(leaving)))
        for peer, hello in zip(leaving, hellos, strict=True):
            assert "resumed" in hello, f"{peer.browser_id} started a fresh session"
        return leaving

    async def assert_calls_alive(self) -> None:
        before = [(a.frames_received, b.frames_received) for a, b in self.calls]
        await wait_until(
            lambda: all(
                a.frames_received >= fa + MORE_FRAMES and b.frames_received >= fb + MORE_FRAMES
                for (a, b), (fa, fb) in zip(self.calls, before, strict=True)
            ),
            20,
            "audio on every call",
        )
        for index, (a, b) in enumerate(self.calls):
            text = f"after the restart, call {index}"
            await a.client.emit("chat", {"call_id": a.call_id, "text": text})
            assert (await b.client.next("chat"))["text"] == text
            await b.client.emit("chat", {"call_id": b.call_id, "text": text + " reply"})
            assert (await a.client.next("chat"))["text"] == text + " reply"
        for peer in self.talkers:
            assert peer.counts["partner_left"] == 0
            assert peer.counts["matched"] == 1

    def assert_waiters_waiting(self) -> None:
        for peer in self.waiters:
            assert peer.counts["matched"] == 0
            assert peer.counts["partner_left"] == 0

    async def close(self) -> None:
        for pair in self.calls:
            for peer in pair:
                await peer.close()
        await asyncio.gather(*(peer.close() for peer in self.everyone), return_exceptions=True)


async def start_stack(nats_url: str, tmp_path, processes: list) -> list[int]:
    stack = await spawn_stack(nats_url, str(tmp_path), processes, gateways=3, gateway_extra=GATEWAY_EXTRA)
    return [gateway.port for gateway in stack.gateways]


@pytest.mark.timeout(180)
async def test_sigterm_gateway_moves_clients_and_keeps_calls(nats_broker, tmp_path):
    with service_processes(str(tmp_path)) as processes, loopback_only_ice():
        ports = await start_stack(nats_broker.url, tmp_path, processes)
        scene = Scene(ports)
        try:
            await scene.set_up()
            await scene.assert_calls_alive()

            stopping_at = time.monotonic()
            processes[1].process.terminate()
            moved = await scene.move_off(ports[0], ports[1:])
            assert time.monotonic() - stopping_at < MOVE_DEADLINE_S
            on_first_gateway = len(range(0, CALLS * 2, 3)) + len(range(0, WAITING, 3))
            assert len(moved) == on_first_gateway
            assert processes[1].process.wait(timeout=15) == 0

            await scene.assert_calls_alive()
            scene.assert_waiters_waiting()
        finally:
            await scene.close()


@pytest.mark.timeout(240)
async def test_rolling_restart_drops_no_call(nats_broker, tmp_path):
    with service_processes(str(tmp_path)) as processes, loopback_only_ice():
        ports = await start_stack(nats_broker.url, tmp_path, processes)
        scene = Scene(ports)
        try:
            await scene.set_up()
            for index, port in enumerate(ports):
                old = processes[1 + index]
                old.process.terminate()
                others = [other for other in ports if other != port]
                await scene.move_off(port, others)
                assert old.process.wait(timeout=15) == 0
                processes[1 + index] = await start_gateway(nats_broker.url, tmp_path, f"gw{index}", port)
                await scene.assert_calls_alive()
            scene.assert_waiters_waiting()
        finally:
            await scene.close()
