"""A "Hide my IP" call through two gateway processes and a real coturn on loopback, where one side
gathers relay candidates only and the gateway removes any other candidate that side sends."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnection

from scripts.coturn import Coturn
from services.signalling.ice_filter import candidate_type
from tests.support.client import Peer
from tests.support.nats_server import Broker
from tests.support.stack import service_processes, spawn_stack
from tests.support.turn import CREDENTIAL_LIFETIME_S, TURN_SECRET, running_coturn, skip_without_turnserver
from tests.support.waiting import wait_until
from tests.support.webrtc import CallPeer, ToneTrack, loopback_only_ice

MIN_FRAMES = 50
TONE_HIDDEN_HZ = 440.0
TONE_PARTNER_HZ = 880.0
CONNECT_TIMEOUT_S = 20.0

pytestmark = skip_without_turnserver


class TurnCallPeer(CallPeer):
    """A CallPeer whose RTCPeerConnection uses the ice_servers from `matched`, relay-only when hiding."""

    def __init__(self, client: Peer, frequency_hz: float, relay_only: bool) -> None:
        super().__init__(client, frequency_hz)
        self.frequency_hz = frequency_hz
        self.relay_only = relay_only

    async def start(self, matched: dict[str, Any]) -> None:
        # The connection made in CallPeer.__init__ has no ICE servers yet, so replace it before negotiating.
        await self.pc.close()
        servers = [
            RTCIceServer(urls=server["urls"], username=server.get("username"), credential=server.get("credential"))
            for server in matched["ice_servers"]
        ]
        policy = RTCIceTransportPolicy.RELAY if self.relay_only else RTCIceTransportPolicy.ALL
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers, iceTransportPolicy=policy))
        self.pc.addTrack(ToneTrack(self.frequency_hz))
        self.pc.on("track", self._on_track)
        self.pc.on("iceconnectionstatechange", self._on_ice_state)
        await super().start(matched)

    def local_candidate_types(self) -> set[str]:
        ice_transport = self.pc.getTransceivers()[0].sender.transport.transport
        return {candidate.type for candidate in ice_transport.iceGatherer.getLocalCandidates()}


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    with running_coturn(tmp_path) as server:
        yield server


@asynccontextmanager
async def gateways_with_turn(broker: Broker, coturn: Coturn, tmp_path: Path) -> AsyncIterator[list[str]]:
    """Run a matcher and two gateway processes that hand out credentials for `coturn`, and yield their URLs."""
    turn = {
        "TURN_URLS": coturn.url,
        "TURN_SECRET": TURN_SECRET,
        "TURN_CREDENTIAL_LIFETIME_S": str(CREDENTIAL_LIFETIME_S),
    }
    with service_processes(str(tmp_path)) as processes:
        stack = await spawn_stack(broker.url, str(tmp_path), processes, gateway_extra=turn)
        yield [stack.gateway_url(index) for index in range(len(stack.gateways))]


async def matched_pair(hidden: Peer, partner: Peer) -> tuple[dict[str, Any], dict[str, Any]]:
    for client in (hidden, partner):
        await client.connect()
    await hidden.join()
    await partner.join()
    matched_hidden, matched_partner = await hidden.next("matched"), await partner.next("matched")
    assert matched_hidden["call_id"] == matched_partner["call_id"]
    return matched_hidden, matched_partner


def hiding_client(url: str) -> Peer:
    client = Peer(url)
    client.auth = {"browser_id": client.browser_id, "hide_ip": True}
    return client


def turn_server(matched: dict[str, Any]) -> dict[str, Any]:
    """Return the ice_servers entry that carries TURN credentials."""
    servers = [server for server in matched["ice_servers"] if server.get("username")]
    assert len(servers) == 1, f"expected one TURN entry in ice_servers, got {len(servers)}"
    return servers[0]


def sdp_candidate_types(sdp: str) -> list[str | None]:
    return [candidate_type(line) for line in sdp.splitlines() if line.startswith("a=candidate:")]


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_hidden_side_talks_through_relay(nats_broker: Broker, coturn: Coturn, tmp_path: Path) -> None:
    async with gateways_with_turn(nats_broker, coturn, tmp_path) as urls:
        hidden_client, partner_client = hiding_client(urls[0]), Peer(urls[1])
        with loopback_only_ice():
            matched_hidden, matched_partner = await matched_pair(hidden_client, partner_client)
            turn_server(matched_hidden)
            turn_server(matched_partner)
            hidden = TurnCallPeer(hidden_client, TONE_HIDDEN_HZ, relay_only=True)
            partner = TurnCallPeer(partner_client, TONE_PARTNER_HZ, relay_only=False)
            try:
                await hidden.start(matched_hidden)
                await partner.start(matched_partner)
                await asyncio.wait_for(hidden.connected.wait(), CONNECT_TIMEOUT_S)
                await asyncio.wait_for(partner.connected.wait(), CONNECT_TIMEOUT_S)
                await wait_until(
                    lambda: min(hidden.frames_received, partner.frames_received) >= MIN_FRAMES,
                    CONNECT_TIMEOUT_S,
                    f"{MIN_FRAMES} audio frames on both sides",
                )

                assert hidden.frames_received >= MIN_FRAMES
                assert partner.frames_received >= MIN_FRAMES
                assert abs(hidden.heard_frequency() - TONE_PARTNER_HZ) < 30
                assert abs(partner.heard_frequency() - TONE_HIDDEN_HZ) < 30

                assert hidden.local_candidate_types() == {"relay"}
                assert partner.remote_candidates, "no candidate of the hidden side reached the partner"
                assert {candidate_type(candidate) for candidate in partner.remote_candidates} == {"relay"}
                for sdp in partner.remote_sdps:
                    assert set(sdp_candidate_types(sdp)) <= {"relay"}
                assert "host" in {candidate_type(candidate) for candidate in hidden.remote_candidates}
            finally:
                await hidden.close()
                await partner.close()
                for client in (hidden_client, partner_client):
                    await client.close()


@pytest.mark.timeout(60)
async def test_matched_carries_own_turn_credentials(nats_broker: Broker, coturn: Coturn, tmp_path: Path) -> None:
    async with gateways_with_turn(nats_broker, coturn, tmp_path) as urls:
        hidden_client, partner_client = hiding_client(urls[0]), Peer(urls[1])
        try:
            matched_hidden, matched_partner = await matched_pair(hidden_client, partner_client)
            server_hidden, server_partner = turn_server(matched_hidden), turn_server(matched_partner)

            assert coturn.url in server_hidden["urls"]
            assert coturn.url in server_partner["urls"]
            assert server_hidden["username"] != server_partner["username"]
            for server, client in ((server_hidden, hidden_client), (server_partner, partner_client)):
                expiry, random_id = server["username"].split(":")
                assert expiry.isdigit()
                assert int(expiry) > time.time()
                assert client.hello["session_id"] not in server["username"]
                assert len(random_id) >= 16
        finally:
            for client in (hidden_client, partner_client):
                await client.close()


# Client addresses of the hiding side, used only as SDP text: the partner is a plain Socket.IO client here,
# so nothing connects to them.
LEAKY_HOST = "candidate:1 1 udp 2122260223 192.168.1.20 54321 typ host generation 0"
LEAKY_SRFLX = "candidate:2 1 udp 1686052607 203.0.113.5 54321 typ srflx raddr 192.168.1.20 rport 54321"
LEAKY_PRFLX = "candidate:3 1 udp 1853824767 198.51.100.77 60000 typ prflx raddr 192.168.1.20 rport 54321"
RELAY = "candidate:4 1 udp 41885439 127.0.0.1 50000 typ relay raddr 203.0.113.5 rport 54321 generation 0"
HIDDEN_RELAY = "candidate:4 1 udp 41885439 127.0.0.1 50000 typ relay raddr 0.0.0.0 rport 9 generation 0"
LEAKY_OFFER = (
    "\r\n".join(
        [
            "v=0",
            "o=- 1 2 IN IP4 127.0.0.1",
            "s=-",
            "t=0 0",
            "m=audio 54321 UDP/TLS/RTP/SAVPF 111",
            "c=IN IP4 203.0.113.5",
            "a=" + LEAKY_HOST,
            "a=" + LEAKY_SRFLX,
            "a=" + RELAY,
            "a=mid:0",
        ]
    )
    + "\r\n"
)
CLIENT_ADDRESSES = ("192.168.1.20", "203.0.113.5", "198.51.100.77")


def trickled(candidate: str) -> dict[str, Any]:
    return {"candidate": candidate, "sdpMid": "0", "sdpMLineIndex": 0}


async def send_signal(client: Peer, call_id: str, kind: str, data: Any) -> None:
    await client.emit("signal", {"call_id": call_id, "kind": kind, "data": data})


@pytest.mark.timeout(60)
async def test_gateway_strips_non_relay_candidates(nats_broker: Broker, coturn: Coturn, tmp_path: Path) -> None:
    async with gateways_with_turn(nats_broker, coturn, tmp_path) as urls:
        hidden, partner = hiding_client(urls[0]), Peer(urls[1])
        try:
            matched, _ = await matched_pair(hidden, partner)
            call_id = matched["call_id"]

            await send_signal(hidden, call_id, "offer", {"type": "offer", "sdp": LEAKY_OFFER})
            for line in (LEAKY_HOST, LEAKY_SRFLX, LEAKY_PRFLX, RELAY):
                await send_signal(hidden, call_id, "candidate", trickled(line))
            await send_signal(hidden, call_id, "candidate", None)

            offer = await partner.next("signal")
            assert offer["kind"] == "offer"
            assert sdp_candidate_types(offer["data"]["sdp"]) == ["relay"]
            for address in CLIENT_ADDRESSES:
                assert address not in offer["data"]["sdp"]

            relayed = await partner.next("signal")
            assert relayed["kind"] == "candidate"
            assert relayed["data"]["candidate"] == HIDDEN_RELAY
            end = await partner.next("signal")
            assert end["kind"] == "candidate"
            assert end["data"] is None

            # The partner does not hide, so its host candidate reaches the hidden side unchanged.
            await send_signal(partner, call_id, "candidate", trickled(LEAKY_HOST))
            assert (await hidden.next("signal"))["data"]["candidate"] == LEAKY_HOST
        finally:
            for client in (hidden, partner):
                await client.close()
