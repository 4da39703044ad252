"""ICE restart in headless Chromium: two pages that both hide their IP call through a real coturn on loopback,
so the relay is their only media path. The test stops coturn during the call and starts a new one on the same
port. The allocations of the first coturn are gone, so the call recovers only if the page restarts ICE and
gathers new relay candidates. It must recover on the same RTCPeerConnection, within the same call.
"""

import asyncio
import dataclasses
import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import WebSocket

from scripts.coturn import Coturn, start_coturn
from shared.policy import PolicySettings
from tests.support.browser import CHROMIUM_PATH, CallPage, WebStack, chromium, web_stack
from tests.support.nats_server import Broker, free_port
from tests.support.turn import TURN_SECRET, skip_without_turnserver, turn_settings
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.timeout(180),
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM_PATH),
        reason=f"{CHROMIUM_PATH} is missing; install Debian's chromium package (make test does as root)",
    ),
    skip_without_turnserver,
]


# ICE_RESTART_AFTER_S for the page. The page tries 3 restarts per outage, so a longer delay gives the new coturn
# more time to come up before the last attempt.
ICE_RESTART_AFTER_S = 2.0

# Inbound audio must grow by at least this many bytes: a few Opus packets of the fake tone.
MIN_AUDIO_GROWTH_BYTES = 2000

# Seconds for audio to grow on a connected call. It takes well under a second on loopback.
AUDIO_WAIT_S = 15.0

# Seconds for Chromium to report the connection disconnected or failed once the relay is gone. Chromium 156
# reported disconnected a few seconds after the relay stopped.
OUTAGE_WAIT_S = 60.0

# Seconds for the page to restart ICE through the new coturn and reach connected again.
RECOVERY_WAIT_S = 60.0

PROBLEM_STATES = ("disconnected", "failed")

# Records every value of the page's connection state label (#connection-state, data-state), in order.
STATE_RECORDER_SCRIPT = """
(() => {
  window.__calln_states = [];
  document.addEventListener('DOMContentLoaded', () => {
    const element = document.getElementById('connection-state');
    new MutationObserver(() => window.__calln_states.push(element.dataset.state))
      .observe(element, { attributes: true, attributeFilter: ['data-state'] });
  });
})();
"""

# A Socket.IO event in a WebSocket frame of Engine.IO v4: "4" (message), "2" (event), optional ack id, JSON array.
SOCKET_IO_EVENT = re.compile(r"^42\d*(\[.*)$", re.DOTALL)

ICE_UFRAG = re.compile(r"^a=ice-ufrag:(\S+)", re.MULTILINE)


@dataclass
class SocketEvents:
    """Socket.IO events one page received from and sent to its gateways, as (name, data) pairs."""

    received: list[tuple[str, Any]] = field(default_factory=list)
    sent: list[tuple[str, Any]] = field(default_factory=list)

    def received_data(self, name: str) -> list[Any]:
        return [data for event, data in self.received if event == name]

    def sent_offers(self) -> list[str]:
        """Return the SDP of every offer the page signalled."""
        return [
            data["data"]["sdp"]
            for event, data in self.sent
            if event == "signal" and data.get("kind") == "offer" and isinstance(data.get("data"), dict)
        ]


def parse_socket_event(payload: str | bytes) -> tuple[str, Any] | None:
    if not isinstance(payload, str):
        return None
    match = SOCKET_IO_EVENT.match(payload)
    if match is None:
        return None
    message = json.loads(match.group(1))
    return str(message[0]), message[1] if len(message) > 1 else None


def record_socket_events(page: CallPage) -> SocketEvents:
    """Record the Socket.IO events of every WebSocket the page opens from now on."""
    events = SocketEvents()

    def append(target: list[tuple[str, Any]], payload: str | bytes) -> None:
        event = parse_socket_event(payload)
        if event is not None:
            target.append(event)

    def on_websocket(socket: WebSocket) -> None:
        socket.on("framereceived", lambda payload: append(events.received, payload))
        socket.on("framesent", lambda payload: append(events.sent, payload))

    page.page.on("websocket", on_websocket)
    return events


@dataclass
class RestartableCoturn:
    """The coturn currently running on one loopback port. `stop` and then `start` replace it with a new process."""

    port: int
    log_dir: Path
    server: Coturn | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    async def start(self) -> None:
        self.starts += 1
        log_path = self.log_dir / f"coturn-{self.starts}.log"
        # start_coturn blocks until coturn responds to STUN, so it runs in a thread while the in-process gateways
        # keep running.
        server = await asyncio.to_thread(start_coturn, self.port, TURN_SECRET, log_path=log_path)
        assert server is not None
        self.server = server

    async def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await asyncio.to_thread(server.stop)


@pytest.fixture
async def coturn(tmp_path: Path) -> AsyncIterator[RestartableCoturn]:
    relay = RestartableCoturn(free_port(), tmp_path)
    await relay.start()
    try:
        yield relay
    finally:
        await relay.stop()


async def connection_state(page: CallPage) -> str:
    """Return the connectionState of the page's only RTCPeerConnection."""
    return str(await page.page.evaluate("() => window.__calln_test.pcs[0].connectionState"))


async def peer_connection_count(page: CallPage) -> int:
    return int(await page.page.evaluate("() => window.__calln_test.pcs.length"))


async def shown_states(page: CallPage) -> list[str]:
    return [str(state) for state in await page.page.evaluate("() => window.__calln_states")]


async def ice_ufrags(page: CallPage) -> tuple[str, str]:
    """Return the ice-ufrag of the page's current local and remote description."""
    local_sdp, remote_sdp = await page.page.evaluate(
        "() => { const pc = window.__calln_test.pcs[0]; return [pc.localDescription.sdp, pc.remoteDescription.sdp]; }"
    )
    return ufrag_of(local_sdp), ufrag_of(remote_sdp)


SELECTED_LOCAL_CANDIDATE_SCRIPT = """async () => {
    const stats = await window.__calln_test.pcs[0].getStats();
    let pairId = null;
    stats.forEach((report) => {
        if (report.type === 'transport' && report.selectedCandidatePairId) { pairId = report.selectedCandidatePairId; }
    });
    const pair = pairId === null ? undefined : stats.get(pairId);
    const local = pair === undefined ? undefined : stats.get(pair.localCandidateId);
    return local === undefined ? null : { id: local.id, candidateType: local.candidateType };
}"""


async def selected_local_candidate(page: CallPage) -> dict[str, str]:
    """Poll getStats() until the transport has a selected pair, and return its local candidate's id and type."""
    candidate: dict[str, str] | None = None

    async def has_selected_pair() -> bool:
        nonlocal candidate
        candidate = await page.page.evaluate(SELECTED_LOCAL_CANDIDATE_SCRIPT)
        return candidate is not None

    await wait_until(has_selected_pair, AUDIO_WAIT_S, f"a selected candidate pair on {page.name}")
    assert candidate is not None
    return candidate


def ufrag_of(sdp: str) -> str:
    match = ICE_UFRAG.search(sdp)
    assert match is not None, "a description without a=ice-ufrag"
    return match.group(1)


async def wait_audio_growth(page: CallPage) -> None:
    start_bytes = await page.inbound_audio_bytes()

    async def audio_grew() -> bool:
        return await page.inbound_audio_bytes() > start_bytes + MIN_AUDIO_GROWTH_BYTES

    await wait_until(audio_grew, AUDIO_WAIT_S, f"inbound audio growth on {page.name}")


async def wait_both_connected(pages: tuple[CallPage, CallPage], timeout_s: float, what: str) -> None:
    async def both_connected() -> bool:
        for page in pages:
            if await connection_state(page) != "connected":
                return False
            if await page.page.locator("#connection-state").get_attribute("data-state") != "connected":
                return False
        return True

    await wait_until(both_connected, timeout_s, what)


def call_ids(web: WebStack) -> list[str | None]:
    """Return the call id of every session on the test gateways."""
    return [
        session.call.call_id if session.call is not None else None
        for gateway in web.stack.gateways
        for session in gateway.core.by_session.values()
    ]


# "before_restart": the new coturn is up before the pages' first restart attempt. "during_restart": it starts only
# once a page has begun a restart, so that restart gathers while the relay is still down.
@pytest.mark.parametrize("relay_back", ["before_restart", "during_restart"])
async def test_page_restarts_ice_after_relay_restart(
    nats_broker: Broker, coturn: RestartableCoturn, relay_back: str
) -> None:
    turn = turn_settings(coturn.url)
    policy = dataclasses.replace(PolicySettings.from_env(), turn_relay=True)
    async with (
        web_stack(
            nats_broker.url, gateway_overrides={"turn": turn}, policy=policy, ice_restart_after_s=ICE_RESTART_AFTER_S
        ) as web,
        chromium() as browser,
    ):
        offerer = await CallPage.open(browser, "offerer", web.origin + "/", init_scripts=(STATE_RECORDER_SCRIPT,))
        answerer = await CallPage.open(browser, "answerer", web.origin + "/", init_scripts=(STATE_RECORDER_SCRIPT,))
        pages = (offerer, answerer)
        events = {page.name: record_socket_events(page) for page in pages}
        for page in pages:
            await page.pass_gate()
            await page.page.get_by_role("switch", name="Hide my IP").check()

        # The matcher makes the older waiter the offerer.
        await offerer.start_call()
        await offerer.wait_screen("waiting")
        await answerer.start_call()
        for page in pages:
            await page.wait_screen("call")
        await wait_both_connected(pages, AUDIO_WAIT_S, "both pages connected through the relay")
        for page in pages:
            await wait_audio_growth(page)

        [call_id] = set(call_ids(web))
        assert call_id is not None
        [matched] = events["offerer"].received_data("matched")
        assert matched["role"] == "offerer"
        offerer_ufrag, answerer_ufrag = await ice_ufrags(offerer)
        assert await ice_ufrags(answerer) == (answerer_ufrag, offerer_ufrag)
        first_candidates = {page.name: await selected_local_candidate(page) for page in pages}
        for candidate in first_candidates.values():
            assert candidate["candidateType"] == "relay"

        # The relay goes away, and with it the only media path of both pages.
        await coturn.stop()

        async def outage_shown() -> bool:
            for page in pages:
                if await connection_state(page) in PROBLEM_STATES:
                    return True
            return False

        await wait_until(outage_shown, OUTAGE_WAIT_S, "a page reporting its connection disconnected or failed")

        if relay_back == "during_restart":

            async def restart_begun() -> bool:
                for page in pages:
                    if "restarting" in await shown_states(page):
                        return True
                return False

            await wait_until(restart_begun, OUTAGE_WAIT_S, "a page showing that it restarts ICE")
            assert coturn.server is None

        # A new coturn on the same port and secret has none of the old allocations, but it accepts the pages'
        # credentials, which stay valid for 600 s.
        await coturn.start()
        await wait_both_connected(pages, RECOVERY_WAIT_S, "both pages connected again after the relay restart")

        # The offerer signalled a new offer with a new ufrag, the answerer answered it with a new ufrag too, and
        # both sides applied the new pair.
        new_offerer_ufrag, new_answerer_ufrag = await ice_ufrags(offerer)
        assert new_offerer_ufrag != offerer_ufrag
        assert new_answerer_ufrag != answerer_ufrag
        assert await ice_ufrags(answerer) == (new_answerer_ufrag, new_offerer_ufrag)
        offered_ufrags = [ufrag_of(sdp) for sdp in events["offerer"].sent_offers()]
        assert offered_ufrags[0] == offerer_ufrag
        assert new_offerer_ufrag in offered_ufrags
        assert events["answerer"].sent_offers() == []

        # A page whose restart timer fired showed "Reconnecting…". The other page may have recovered before its
        # own timer fired.
        restarting_pages = [page.name for page in pages if "restarting" in await shown_states(page)]
        assert restarting_pages != []

        # Media flows again over relay candidates gathered after the outage.
        for page in pages:
            candidate = await selected_local_candidate(page)
            assert candidate["candidateType"] == "relay"
            assert candidate["id"] != first_candidates[page.name]["id"]
            await wait_audio_growth(page)

        # Same call on the same RTCPeerConnection: no new match, and nobody left.
        assert set(call_ids(web)) == {call_id}
        for page in pages:
            assert await peer_connection_count(page) == 1
            assert [data["call_id"] for data in events[page.name].received_data("matched")] == [call_id]
            assert events[page.name].received_data("partner_left") == []
            assert await page.page.locator("#screen-call").is_visible()

        assert offerer.errors == []
        assert answerer.errors == []
