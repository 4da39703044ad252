"""The "Hide my IP" switch in headless Chromium: two pages call through a real coturn on loopback. The hiding
page's selected candidate pair, as `getStats()` reports it, starts at a relay candidate, and every candidate of
the hiding page that the partner receives or learns from connectivity checks is a relay candidate.
"""

import dataclasses
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts.coturn import Coturn
from shared.policy import PolicySettings
from tests.support.browser import CHROMIUM_PATH, CallPage, WebStack, chromium, web_stack
from tests.support.nats_server import Broker
from tests.support.turn import running_coturn, skip_without_turnserver, turn_settings
from tests.support.waiting import wait_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM_PATH),
        reason=f"{CHROMIUM_PATH} is missing; install Debian's chromium package (make test does as root)",
    ),
    skip_without_turnserver,
]


# Inbound audio must grow by at least this many bytes: a few Opus packets of the fake tone.
MIN_AUDIO_GROWTH_BYTES = 2000

# Seconds for ICE through the relay to select a pair, and for audio to grow. Both take well under a second on loopback.
STATS_WAIT_S = 10.0

# Candidate types that carry the browser's own address (host) or the address its NAT maps it to.
ADDRESS_REVEALING_TYPES = {"host", "srflx", "prflx"}

# Every stats report of the page's current RTCPeerConnection, as plain dictionaries.
STATS_SCRIPT = """async () => {
    const pcs = window.__calln_test.pcs;
    const stats = await pcs[pcs.length - 1].getStats();
    const reports = [];
    stats.forEach((report) => reports.push(report));
    return reports;
}"""

REMOTE_SDP_SCRIPT = """() => {
    const pcs = window.__calln_test.pcs;
    const description = pcs[pcs.length - 1].remoteDescription;
    return description === null ? '' : description.sdp;
}"""

SDP_CANDIDATE_TYPE = re.compile(r" typ (\S+)")


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    with running_coturn(tmp_path) as server:
        yield server


async def stats_by_id(page: CallPage) -> dict[str, dict[str, Any]]:
    reports = await page.page.evaluate(STATS_SCRIPT)
    return {report["id"]: report for report in reports}


def of_type(stats: dict[str, dict[str, Any]], stats_type: str) -> list[dict[str, Any]]:
    return [report for report in stats.values() if report["type"] == stats_type]


def selected_pair(stats: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Return the transport's selected candidate pair, else a nominated pair that succeeded, else None."""
    for transport in of_type(stats, "transport"):
        pair_id = transport.get("selectedCandidatePairId")
        if pair_id in stats:
            return stats[pair_id]
    for pair in of_type(stats, "candidate-pair"):
        if pair.get("nominated") and pair.get("state") == "succeeded":
            return pair
    return None


async def wait_selected_pair(page: CallPage) -> dict[str, dict[str, Any]]:
    """Poll getStats() until a candidate pair is selected, and return the stats that show it."""
    latest: dict[str, dict[str, Any]] = {}

    async def has_selected_pair() -> bool:
        nonlocal latest
        latest = await stats_by_id(page)
        return selected_pair(latest) is not None

    await wait_until(has_selected_pair, STATS_WAIT_S, f"a selected candidate pair on {page.name}")
    return latest


async def wait_audio_growth(page: CallPage) -> None:
    start_bytes = await page.inbound_audio_bytes()

    async def audio_grew() -> bool:
        return await page.inbound_audio_bytes() > start_bytes + MIN_AUDIO_GROWTH_BYTES

    await wait_until(audio_grew, STATS_WAIT_S, f"inbound audio growth on {page.name}")


def sdp_candidate_types(sdp: str) -> list[str]:
    types = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            match = SDP_CANDIDATE_TYPE.search(line)
            types.append(match.group(1) if match else "malformed")
    return types


def call_roles(web: WebStack, hide_ip: bool) -> list[str | None]:
    """Return the call role of every session on the test gateways whose hide_ip flag is `hide_ip`."""
    return [
        session.call.role if session.call is not None else None
        for gateway in web.stack.gateways
        for session in gateway.core.by_session.values()
        if session.hide_ip == hide_ip
    ]


# The matcher makes the older waiter the offerer, so the page that presses Start first takes the first role.
@pytest.mark.parametrize("hidden_role", ["offerer", "answerer"])
async def test_hidden_page_selects_relay_pair(nats_broker: Broker, coturn: Coturn, hidden_role: str) -> None:
    turn = turn_settings(coturn.url)
    policy = dataclasses.replace(PolicySettings.from_env(), turn_relay=True)
    # NOTE: Chromium 156 sends TURN traffic from a socket on a non-loopback interface. On a machine whose only
    # interface is loopback it gathers no relay candidate, and the call never connects, unless Chromium runs with
    # --allow-loopback-in-peer-connection. That flag also makes 127.0.0.1 a host address, which the address checks
    # below cannot tell apart from the relay's 127.0.0.1.
    async with (
        web_stack(nats_broker.url, gateway_overrides={"turn": turn}, policy=policy) as web,
        chromium() as browser,
    ):
        hidden = await CallPage.open(browser, "hidden", web.origin + "/")
        partner = await CallPage.open(browser, "partner", web.origin + "/")
        for page in (hidden, partner):
            await page.pass_gate()

        # The person turns the switch on before Start, so the socket opens with hide_ip in its auth.
        await hidden.page.get_by_role("switch", name="Hide my IP").check()
        assert await hidden.page.evaluate("() => localStorage.getItem('calln_hide_ip')") == "1"
        assert await hidden.page.locator("#hide-ip-warning").is_hidden()

        first, second = (hidden, partner) if hidden_role == "offerer" else (partner, hidden)
        await first.start_call()
        await first.wait_screen("waiting")
        await second.start_call()
        for page in (hidden, partner):
            await page.wait_screen("call")
            await page.wait_connected()
        partner_role = "answerer" if hidden_role == "offerer" else "offerer"
        assert call_roles(web, hide_ip=True) == [hidden_role]
        assert call_roles(web, hide_ip=False) == [partner_role]
        assert await hidden.page.locator("#relay-warning").is_hidden()

        # The hiding page talks through its relay allocation, and gathered nothing else.
        hidden_stats = await wait_selected_pair(hidden)
        pair = selected_pair(hidden_stats)
        assert pair is not None
        assert pair["state"] == "succeeded"
        local = hidden_stats[pair["localCandidateId"]]
        assert local["candidateType"] == "relay"
        assert {report["candidateType"] for report in of_type(hidden_stats, "local-candidate")} == {"relay"}

        for page in (hidden, partner):
            await wait_audio_growth(page)

        # Every candidate the partner has for the hiding page is a relay candidate. Both pages run on this machine,
        # so the partner's own host candidates carry the addresses the hiding page would otherwise reveal.
        partner_stats = await wait_selected_pair(partner)
        partner_pair = selected_pair(partner_stats)
        assert partner_pair is not None
        assert partner_stats[partner_pair["remoteCandidateId"]]["candidateType"] == "relay"
        remote_candidates = of_type(partner_stats, "remote-candidate")
        assert remote_candidates, "the partner has no remote candidate stats"
        # Chromium 156 reports a peer-reflexive remote candidate with an empty address, so only the type check
        # catches a host address learnt from connectivity checks rather than from signalling.
        remote_types = [report["candidateType"] for report in remote_candidates]
        assert [kind for kind in remote_types if kind in ADDRESS_REVEALING_TYPES] == []
        host_addresses = {
            report["address"]
            for report in of_type(partner_stats, "local-candidate")
            if report["candidateType"] == "host" and report.get("address")
        }
        assert host_addresses, "the partner gathered no host candidate to compare addresses with"
        assert {report.get("address") for report in remote_candidates} & host_addresses == set()

        remote_sdp = await partner.page.evaluate(REMOTE_SDP_SCRIPT)
        assert set(sdp_candidate_types(remote_sdp)) <= {"relay"}
        for address in host_addresses:
            assert address not in remote_sdp

        assert hidden.errors == []
        assert partner.errors == []
