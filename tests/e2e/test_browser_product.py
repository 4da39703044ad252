"""The whole browser product in headless Chromium with fake microphones, against real gateways and NATS.

Each test opens pages in separate browser contexts (separate cookies, so separate browser ids) and acts
as a person would: the age gate, the consent banner, Start, chat, games, Skip, Report and Stop.
Screenshots of each screen go to docs/screenshots/ with UPDATE_SCREENSHOTS=1 (`make screenshots`).
"""

import asyncio
import dataclasses
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from urllib.parse import urlsplit

import aiohttp
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from playwright.async_api import Browser, Request

from shared import subjects
from shared.codec import decode
from shared.events import ModerationReport
from shared.policy import PolicySettings
from tests.support.browser import (
    ADDRESS_GB,
    ADDRESS_SE,
    CallPage,
    WebStack,
    chromium,
    skip_without_chromium,
    tab_to,
    web_stack,
)
from tests.support.nats_server import Broker
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

# The typing indicator clears this long after the last `typing` event (TYPING_IDLE_S default).
TYPING_IDLE_S = 3.0

# Inbound audio must grow by at least this many bytes: a few Opus packets of the fake tone.
MIN_AUDIO_GROWTH_BYTES = 2000

# Phone-sized viewport for the responsive layout check.
PHONE_VIEWPORT = {"width": 390, "height": 844}


@asynccontextmanager
async def report_listener(nats_url: str) -> AsyncIterator[list[ModerationReport]]:
    """Collect every moderation.report the gateways publish while the block runs."""
    reports: list[ModerationReport] = []

    async def on_report(message: Msg) -> None:
        reports.append(decode(message.data, ModerationReport))

    client = NatsClient()
    await client.connect(nats_url, connect_timeout=5)
    try:
        await client.subscribe(subjects.MODERATION_REPORT, cb=on_report)
        yield reports
    finally:
        await client.drain()


async def metric(web: WebStack, name: str, event: str) -> float:
    """Read one analytics counter from the web service's /metrics."""
    async with aiohttp.ClientSession() as http, http.get(web.origin + "/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(f'{name}{{name="{event}"}} '):
            return float(line.split()[-1])
    raise AssertionError(f"{name}{{name={event!r}}} missing from /metrics")


def foreign_requests(page: CallPage, web: WebStack) -> list[str]:
    allowed = {web.origin} | web.gateway_origins
    foreign = []
    for url in page.request_urls():
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" not in allowed:
            foreign.append(url)
    return foreign


def event_posts(page: CallPage) -> list[str]:
    return [entry for entry in page.requests if entry.startswith("POST ") and entry.endswith("/api/events")]


def websocket_gateways(page: CallPage) -> set[str]:
    return {urlsplit(entry.split(" ", 1)[1]).netloc for entry in page.requests if entry.startswith("WEBSOCKET ")}


async def two_callers(browser: Browser, web: WebStack, accept: bool) -> tuple[CallPage, CallPage]:
    """Open two pages, make the consent choice, pass the gate, start both and wait for the call."""
    first = await CallPage.open(browser, "first", web.origin + "/", address=ADDRESS_GB)
    second = await CallPage.open(browser, "second", web.origin + "/", address=ADDRESS_SE)
    for page in (first, second):
        await page.choose_consent(accept)
        await page.pass_gate()
    await first.start_call()
    await first.wait_screen("waiting")
    await second.start_call()
    for page in (first, second):
        await page.wait_screen("call")
        await page.wait_connected()
    return first, second


async def play_tictactoe_to_a_win(starter: CallPage, partner: CallPage) -> None:
    """The starter plays X on the top row while the partner plays the middle row."""
    await starter.page.click("#ttt-start")
    await partner.page.wait_for_selector("#ttt-panel:not([hidden])")
    moves = [(starter, 0), (partner, 3), (starter, 1), (partner, 4), (starter, 2)]
    for number, (player, cell) in enumerate(moves, start=1):
        other = partner if player is starter else starter
        button = player.page.locator(f'#ttt-board [data-cell="{cell}"]')
        await button.click()
        # Both boards show the move before the next one, so turn order is checked on both sides.
        mark = "X" if player is starter else "O"
        await other.page.wait_for_function(
            f"() => document.querySelector('#ttt-board [data-cell=\"{cell}\"]').textContent === '{mark}'"
        )
        assert await player.page.locator("#ttt-board button:not(:disabled)").count() == 0, f"move {number}"


# -- the whole path ----------------------------------------------------------------------------


async def test_whole_path_with_consent_declined(nats_broker: Broker) -> None:
    skip_without_chromium()
    async with web_stack(nats_broker.url) as web, report_listener(web.stack.nats_url) as reports, chromium() as browser:
        first = await CallPage.open(browser, "first", web.origin + "/", address=ADDRESS_GB)
        second = await CallPage.open(browser, "second", web.origin + "/", address=ADDRESS_SE)
        await first.screenshot("01-gate-and-consent")
        for page in (first, second):
            await page.choose_consent(False)
            await page.pass_gate()
        await first.screenshot("02-start")

        # Waiting alone: the online count and the time waited are shown.
        await first.start_call()
        await first.wait_screen("waiting")
        await first.page.wait_for_function("() => /^[0-9]+$/.test(document.querySelector('#wait-online').textContent)")
        await first.page.wait_for_function("() => document.querySelector('#wait-time').textContent !== '0:00'")
        await first.screenshot("03-waiting")

        await second.start_call()
        for page in (first, second):
            await page.wait_screen("call")
            await page.wait_connected()
            assert await page.text("#connection-state") == "Connected"
        assert await first.text("#partner-title") == "Sweden"
        assert await second.text("#partner-title") == "United Kingdom"
        assert await first.page.get_attribute("#partner-flag", "src") == "/static/vendor/flags/se.svg"
        assert websocket_gateways(first) != websocket_gateways(second), "both windows used the same gateway"

        # Audio flows both ways, and both level meters move.
        for page in (first, second):
            start_bytes = await page.inbound_audio_bytes()

            async def audio_grew(page: CallPage = page, start_bytes: int = start_bytes) -> bool:
                return await page.inbound_audio_bytes() > start_bytes + MIN_AUDIO_GROWTH_BYTES

            await wait_until(audio_grew, 10, f"inbound audio growth on {page.name}")
            await page.page.wait_for_function(
                "() => document.querySelector('#meter-remote').style.transform !== 'scaleX(0)'", timeout=10_000
            )

        # Chat both ways, with the typing indicator, and text shown as text.
        message = 'hello <img src=x onerror="window.__owned=1"> & <b>bold</b>'
        await first.page.locator("#chat-input").press_sequentially("hel")
        await second.page.wait_for_selector("#typing-indicator:not([hidden])")
        await first.page.locator("#chat-input").fill(message)
        assert await first.text("#chat-counter") == f"{len(message)} / 1000"
        await first.page.press("#chat-input", "Enter")
        await second.page.wait_for_selector("#chat-log p.from-partner")
        assert await second.page.locator("#chat-log p.from-partner").text_content() == f"Partner: {message}"
        assert await second.page.locator("#chat-log img, #chat-log b").count() == 0
        assert await second.page.evaluate("() => window.__owned === undefined")
        assert await second.page.locator("#typing-indicator").is_hidden()

        await second.page.locator("#chat-input").press_sequentially("hi back")
        await first.page.wait_for_selector("#typing-indicator:not([hidden])")
        await first.page.wait_for_selector("#typing-indicator", state="hidden", timeout=(TYPING_IDLE_S + 3) * 1000)
        await second.page.press("#chat-input", "Enter")
        await first.page.wait_for_selector("#chat-log p.from-partner")
        assert await first.page.locator("#chat-log p.from-partner").text_content() == "Partner: hi back"

        # Tic-tac-toe to a win, then the icebreaker deck in sync.
        await play_tictactoe_to_a_win(first, second)
        assert await first.text("#ttt-status") == "You won!"
        assert await second.text("#ttt-status") == "Your partner won."
        await first.screenshot("04-call-chat-tictactoe", full_page=True)

        await second.page.click("#cards-start")
        await first.page.wait_for_selector("#cards-panel:not([hidden])")
        assert await first.text("#card-text") == await second.text("#card-text")
        await first.page.click("#card-next")
        await second.page.wait_for_function(
            "() => document.querySelector('#card-count').textContent.startsWith('Card 2 ')"
        )
        assert await first.text("#card-text") == await second.text("#card-text")
        await second.screenshot("05-call-icebreaker", full_page=True)

        # Skip with Esc: the skipper waits for someone new, the partner sees that they left.
        await first.page.keyboard.press("Escape")
        await first.wait_screen("waiting")
        await second.wait_screen("ended")
        assert await first.text("#waiting-status") in ("Looking for someone new…", "Waiting for someone…")
        assert await second.text("#ended-title") == "Your partner left"
        assert await second.text("#ended-detail") == "Your partner moved on to someone new."
        for page in (first, second):
            assert await page.page.locator("#chat-log p").count() == 0
            assert set(await page.track_states()) == {"ended"}
        await second.screenshot("06-partner-left")

        # Report the call that just ended.
        await second.page.get_by_role("button", name="Report this call").click()
        await second.page.get_by_label("Spam or advertising").check()
        await second.screenshot("07-report-dialog")
        await second.page.get_by_role("button", name="Send report").click()
        await wait_until(lambda: len(reports) == 1, 5, "moderation.report on NATS")
        assert reports[0].reason == "spam"
        assert await second.text("#ended-title") == "Report sent"
        await second.page.wait_for_function(
            "() => document.querySelector('#status-line').textContent.includes('report was received')"
        )

        await first.page.get_by_role("button", name="Stop").click()
        await first.wait_screen("start")

        for page in (first, second):
            assert event_posts(page) == []
            assert foreign_requests(page, web) == []
            assert page.errors == []


async def test_consent_accepted_sends_events(nats_broker: Broker) -> None:
    skip_without_chromium()
    async with web_stack(nats_broker.url) as web, report_listener(web.stack.nats_url) as reports, chromium() as browser:
        first, second = await two_callers(browser, web, accept=True)
        await first.page.click("#ttt-start")
        await second.page.wait_for_selector("#ttt-panel:not([hidden])")

        # Report during the call: it ends for both, and the reporter sees a confirmation.
        await first.page.get_by_role("button", name="Report").click()
        await first.page.get_by_label("Harassment or threats").check()
        await first.page.get_by_role("button", name="Send report").click()
        await first.wait_screen("ended")
        await second.wait_screen("ended")
        assert await first.text("#ended-title") == "Report sent"
        assert await second.text("#ended-title") == "Your partner left"
        await wait_until(lambda: len(reports) == 1, 5, "moderation.report on NATS")
        assert reports[0].reason == "harassment"

        expected = {"page_view": 2, "call_start": 2, "call_match": 2, "game_play": 1}
        for event, count in expected.items():

            async def counted(event: str = event, count: int = count) -> bool:
                return await metric(web, "calln_web_events_total", event) == count

            await wait_until(counted, 5, f"{count} {event} events counted")
        for page in (first, second):
            assert len(event_posts(page)) >= 3
            assert foreign_requests(page, web) == []
            assert page.errors == []


async def test_event_bodies_carry_only_a_name(nats_broker: Broker) -> None:
    skip_without_chromium()
    async with web_stack(nats_broker.url) as web, chromium() as browser:
        page = await CallPage.open(browser, "solo", web.origin + "/")
        bodies: list[str] = []
        cookies: list[str | None] = []

        async def on_request(request: Request) -> None:
            if request.url.endswith("/api/events"):
                bodies.append(request.post_data or "")
                cookies.append(await request.header_value("cookie"))

        page.page.on("request", on_request)
        await page.choose_consent(True)
        await page.pass_gate()
        await page.start_call()
        await page.wait_screen("waiting")
        await wait_until(lambda: len(bodies) >= 2, 5, "page_view and call_start posted")

        assert [json.loads(body) for body in bodies[:2]] == [{"name": "page_view"}, {"name": "call_start"}]
        assert cookies[:2] == [None, None]


async def test_remembered_choices_survive_reload(nats_broker: Broker) -> None:
    skip_without_chromium()
    async with web_stack(nats_broker.url) as web, chromium() as browser:
        page = await CallPage.open(browser, "solo", web.origin + "/")
        await page.choose_consent(False)
        await page.pass_gate()
        await page.page.get_by_label("Hide my IP").check()
        await page.page.get_by_label("Auto next").first.check()

        await page.page.reload()
        await page.wait_screen("start")

        assert await page.page.locator("#consent-banner").is_hidden()
        assert await page.page.get_by_label("Hide my IP").is_checked()
        assert await page.page.get_by_label("Auto next").first.is_checked()
        assert await page.page.locator("#hide-ip-warning").is_visible()
        assert page.request_urls() and not any("/api/events" in url for url in page.request_urls())


# -- microphone errors ---------------------------------------------------------------------------


async def test_denied_microphone_shows_message(nats_broker: Broker) -> None:
    skip_without_chromium()
    # Without the fake-UI flag and without a permission grant, headless Chromium denies the microphone.
    async with web_stack(nats_broker.url) as web, chromium(("--use-fake-device-for-media-stream",)) as browser:
        page = await CallPage.open(browser, "denied", web.origin + "/")
        await page.choose_consent(False)
        await page.pass_gate()
        await page.start_call()

        await page.page.wait_for_selector("#start-error:not([hidden])")
        assert "permission was denied" in await page.text("#start-error")
        assert await page.page.locator("#start-button").is_enabled()
        await page.screenshot("08-microphone-denied", full_page=True)
        await page.wait_screen("start")
        assert not [url for url in page.request_urls() if url.startswith("ws")], "a call started without a microphone"
        assert page.errors == []


async def test_missing_microphone_shows_message(nats_broker: Broker) -> None:
    skip_without_chromium()
    # No fake device: the browser has permission but finds no microphone.
    async with web_stack(nats_broker.url) as web, chromium(()) as browser:
        page = await CallPage.open(browser, "no-device", web.origin + "/", permissions=["microphone"])
        await page.choose_consent(False)
        await page.pass_gate()
        await page.start_call()

        await page.page.wait_for_selector("#start-error:not([hidden])")
        assert "No microphone was found" in await page.text("#start-error")
        assert not [url for url in page.request_urls() if url.startswith("ws")]


BUSY_MICROPHONE_SCRIPT = """
navigator.mediaDevices.getUserMedia = () =>
  Promise.reject(new DOMException('Could not start audio source', 'NotReadableError'));
"""


async def test_busy_microphone_shows_message(nats_broker: Broker) -> None:
    skip_without_chromium()
    # A device held by another program cannot be arranged here, so the browser's error is injected.
    async with web_stack(nats_broker.url) as web, chromium() as browser:
        page = await CallPage.open(browser, "busy", web.origin + "/", init_scripts=[BUSY_MICROPHONE_SCRIPT])
        await page.choose_consent(False)
        await page.pass_gate()
        await page.start_call()

        await page.page.wait_for_selector("#start-error:not([hidden])")
        assert "microphone is busy" in await page.text("#start-error")


# -- skip while ICE is checking ------------------------------------------------------------------


@contextmanager
def udp_blackhole() -> Iterator[int]:
    """A loopback UDP port that receives connectivity checks and never answers them."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    try:
        yield sink.getsockname()[1]
    finally:
        sink.close()


def blackhole_candidates_script(port: int) -> str:
    """Point every remote UDP candidate at the blackhole and drop TCP ones, so ICE stays in `checking`."""
    return f"""
    (() => {{
      const nativeAdd = RTCPeerConnection.prototype.addIceCandidate;
      RTCPeerConnection.prototype.addIceCandidate = function (candidate, ...rest) {{
        if (candidate && typeof candidate.candidate === 'string' && candidate.candidate !== '') {{
          const parts = candidate.candidate.split(' ');
          if (parts[2].toLowerCase() !== 'udp') {{ return Promise.resolve(); }}
          parts[4] = '127.0.0.1';
          parts[5] = '{port}';
          candidate = {{ ...candidate, candidate: parts.join(' ') }};
        }}
        return nativeAdd.call(this, candidate, ...rest);
      }};
    }})();
    """


async def test_skip_while_checking_ends_tracks(nats_broker: Broker) -> None:
    skip_without_chromium()
    with udp_blackhole() as port:
        script = blackhole_candidates_script(port)
        async with web_stack(nats_broker.url) as web, chromium() as browser:
            first = await CallPage.open(browser, "first", web.origin + "/", init_scripts=[script])
            second = await CallPage.open(browser, "second", web.origin + "/", init_scripts=[script])
            for page in (first, second):
                await page.choose_consent(False)
                await page.pass_gate()
                await page.start_call()
            for page in (first, second):
                await page.wait_screen("call")
            await first.page.wait_for_function(
                "() => { const pcs = window.__calln_test.pcs; return pcs.length > 0 && "
                "pcs[pcs.length - 1].iceConnectionState === 'checking'; }",
                timeout=10_000,
            )
            assert "ended" not in await first.track_states()

            await first.page.keyboard.press("Escape")
            await first.wait_screen("waiting")
            await second.wait_screen("ended")

            assert set(await first.track_states()) == {"ended"}
            assert set(await second.track_states()) == {"ended"}
            assert await first.page.evaluate("() => window.__calln_test.pcs.at(-1).connectionState") == "closed"
            assert first.errors == []
            assert second.errors == []


# The Socket.IO bundle assigns window.io; this wraps it so the page never sees the first offer it is sent.
DROP_FIRST_OFFER_SCRIPT = """
(() => {
  let realIo = null;
  let dropped = false;
  function wrappedIo(...args) {
    const socket = realIo(...args);
    const on = socket.on.bind(socket);
    socket.on = (event, handler) => on(event, event !== 'signal' ? handler : (data) => {
      if (!dropped && data && data.kind === 'offer') {
        dropped = true;
        window.__droppedOffer = true;
        return;
      }
      handler(data);
    });
    return socket;
  }
  Object.defineProperty(window, 'io', {
    configurable: true,
    get: () => (realIo === null ? undefined : wrappedIo),
    set: (value) => { realIo = value; },
  });
})();
"""


async def test_lost_offer_is_requested_again(nats_broker: Broker) -> None:
    skip_without_chromium()
    async with web_stack(nats_broker.url, need_offer_after_s=1.0) as web, chromium() as browser:
        pages = [
            await CallPage.open(browser, name, web.origin + "/", init_scripts=[DROP_FIRST_OFFER_SCRIPT])
            for name in ("first", "second")
        ]
        for page in pages:
            await page.choose_consent(False)
            await page.pass_gate()
            await page.start_call()
        for page in pages:
            await page.wait_connected()

        dropped = [await page.page.evaluate("() => window.__droppedOffer === true") for page in pages]
        assert sorted(dropped) == [False, True], "exactly the answerer should have lost its first offer"
        for page in pages:
            assert page.errors == []


# -- partner leaves, auto next, reconnect ----------------------------------------------------------


async def test_auto_next_rejoins_after_partner_stops(nats_broker: Broker) -> None:
    skip_without_chromium()
    async with web_stack(nats_broker.url) as web, chromium() as browser:
        first = await CallPage.open(browser, "first", web.origin + "/")
        second = await CallPage.open(browser, "second", web.origin + "/")
        for page in (first, second):
            await page.choose_consent(False)
            await page.pass_gate()
        await second.page.get_by_label("Auto next").first.check()
        await first.start_call()
        await first.wait_screen("waiting")
        await second.start_call()
        await second.wait_connected()

        await first.page.get_by_role("button", name="Stop").click()
        await first.wait_screen("start")
        await second.wait_screen("ended")
        assert await second.text("#ended-detail") == "Your partner ended the call."
        assert await second.page.locator("#auto-next-note").is_visible()

        await second.wait_screen("waiting", timeout_s=10)
        assert set(await second.track_states()) == {"ended"}
        assert second.errors == []


async def test_waiting_page_moves_when_gateway_drains(nats_broker: Broker) -> None:
    skip_without_chromium()
    async with web_stack(nats_broker.url) as web, chromium() as browser:
        first = await CallPage.open(browser, "first", web.origin + "/")
        await first.choose_consent(False)
        await first.pass_gate()
        await first.start_call()
        await first.wait_screen("waiting")
        await first.page.wait_for_function(
            "() => document.querySelector('#waiting-status').textContent === 'Waiting for someone…'"
        )
        (used,) = websocket_gateways(first)
        draining = next(g for g in web.stack.gateways if f"127.0.0.1:{g.port}" == used)

        drain = asyncio.create_task(draining.drain())
        await wait_until(lambda: len(websocket_gateways(first)) == 2, 10, "a socket to the other gateway")
        await drain

        second = await CallPage.open(browser, "second", web.origin + "/")
        await second.choose_consent(False)
        await second.pass_gate()
        await second.start_call()
        for page in (first, second):
            await page.wait_screen("call")
            await page.wait_connected()
        assert first.errors == []


async def test_call_survives_gateway_drain(nats_broker: Broker) -> None:
    skip_without_chromium()
    async with web_stack(nats_broker.url) as web, chromium() as browser:
        first, second = await two_callers(browser, web, accept=False)
        (used,) = websocket_gateways(first)
        draining = next(g for g in web.stack.gateways if f"127.0.0.1:{g.port}" == used)
        pcs_before = await first.page.evaluate("() => window.__calln_test.pcs.length")

        await draining.drain()
        await wait_until(lambda: len(websocket_gateways(first)) == 2, 10, "a socket to the other gateway")
        await first.page.wait_for_function("() => document.querySelector('#status-line').textContent === ''")

        # The same peer connection carries on, and chat is relayed through the new gateway both ways.
        assert await first.page.evaluate("() => window.__calln_test.pcs.length") == pcs_before
        assert await first.page.evaluate("() => window.__calln_test.pcs.at(-1).connectionState") == "connected"
        await second.page.locator("#chat-input").fill("still there?")
        await second.page.press("#chat-input", "Enter")
        await first.page.wait_for_selector("#chat-log p.from-partner")
        await first.page.locator("#chat-input").fill("yes")
        await first.page.press("#chat-input", "Enter")
        await second.page.wait_for_selector("#chat-log p.from-partner")
        for page in (first, second):
            assert await page.page.locator("#screen-call").is_visible()
            assert page.errors == []


class BanEveryone:
    """A ban lookup that reports every address as banned until a fixed time."""

    def __init__(self, until_s: float) -> None:
        self.until_s = until_s
        self.lookups = 0

    def banned_until(self, ip_key: str, now_s: float) -> float | None:
        self.lookups += 1
        return self.until_s


async def test_banned_page_shows_until_and_stops(nats_broker: Broker) -> None:
    skip_without_chromium()
    bans = BanEveryone(until_s=time.time() + 3600)
    async with web_stack(nats_broker.url, bans=bans) as web, chromium() as browser:
        page = await CallPage.open(browser, "banned", web.origin + "/", address=ADDRESS_GB)
        await page.choose_consent(False)
        await page.pass_gate()
        await page.start_call()

        await page.wait_screen("banned")
        assert "banned until" in await page.text("#banned-detail")
        lookups = bans.lookups
        await asyncio.sleep(1.5)  # Longer than the first reconnect delays: a retrying page would look up again.
        assert bans.lookups == lookups
        assert set(await page.track_states()) == {"ended"}
        await page.screenshot("13-banned")


# -- optional third parties -----------------------------------------------------------------------

# The .invalid top-level domain never resolves (RFC 6761), and Playwright fulfils requests to them itself,
# so nothing leaves the machine even if the page requested them too early.
ADS_URL = "https://ads.calln.invalid/slot.html"
ANALYTICS_URL = "https://stats.calln.invalid/script.js"


def third_party_requests(page: CallPage) -> list[str]:
    return [url for url in page.request_urls() if ".calln.invalid" in url]


async def test_third_parties_load_only_after_accept(nats_broker: Broker) -> None:
    skip_without_chromium()
    policy = dataclasses.replace(PolicySettings.from_env(), ads_url=ADS_URL, analytics_url=ANALYTICS_URL)
    async with web_stack(nats_broker.url, policy=policy, auto_next_delay_s=0.5) as web, chromium() as browser:
        first = await CallPage.open(browser, "first", web.origin + "/", address=ADDRESS_GB)
        second = await CallPage.open(browser, "second", web.origin + "/", address=ADDRESS_SE)
        for page in (first, second):
            await page.context.route(ADS_URL, lambda route: route.fulfill(body="<p>Ad</p>", content_type="text/html"))
            await page.context.route(
                ANALYTICS_URL,
                lambda route: route.fulfill(body="window.__externalAnalytics = true;", content_type="text/javascript"),
            )
            await page.choose_consent(False)
            await page.pass_gate()
        assert third_party_requests(first) == []
        assert await first.page.locator("#ad-slot").is_hidden()

        for page in (first, second):
            await page.page.get_by_role("button", name="Privacy choices").click()
            await page.choose_consent(True)
        await first.page.wait_for_selector("#ad-slot iframe")
        await first.page.wait_for_function("() => window.__externalAnalytics === true")
        assert ANALYTICS_URL in third_party_requests(first)
        assert await first.page.get_attribute("#ad-slot iframe", "src") == ADS_URL

        # With ads on, "auto next" shows the interstitial before the next search.
        await second.page.get_by_label("Auto next").first.check()
        await first.start_call()
        await first.wait_screen("waiting")
        await second.start_call()
        await second.wait_connected()
        await first.page.get_by_role("button", name="Stop").click()
        await second.wait_screen("ended")
        await second.page.wait_for_selector("#interstitial:not([hidden]) iframe")
        await second.screenshot("12-ads-interstitial")
        await second.page.get_by_role("button", name="Continue").click()
        await second.wait_screen("waiting")
        for page in (first, second):
            assert page.errors == []


# -- accessibility and layout ----------------------------------------------------------------------


async def test_screens_have_no_serious_axe_violations(nats_broker: Broker) -> None:
    skip_without_chromium()
    async with web_stack(nats_broker.url) as web, chromium() as browser:
        found: dict[str, list[object]] = {}
        first = await CallPage.open(browser, "first", web.origin + "/")
        phone = await CallPage.open(browser, "phone", web.origin + "/", viewport=PHONE_VIEWPORT, has_touch=True)

        found["gate"] = await first.axe_violations()
        await phone.screenshot("09-phone-gate")
        for page in (first, phone):
            await page.choose_consent(False)
            await page.pass_gate()
        found["start"] = await first.axe_violations()
        await first.start_call()
        await first.wait_screen("waiting")
        found["waiting"] = await first.axe_violations()
        await phone.start_call()
        for page in (first, phone):
            await page.wait_screen("call")
            await page.wait_connected()
        await first.page.click("#ttt-start")
        await phone.page.wait_for_selector("#ttt-panel:not([hidden])")
        await first.page.locator("#chat-input").fill("Hi from the desktop")
        await first.page.press("#chat-input", "Enter")
        await phone.page.wait_for_selector("#chat-log p.from-partner")
        found["call"] = await first.axe_violations()
        found["call_phone"] = await phone.axe_violations()
        await phone.screenshot("10-phone-call", full_page=True)
        await first.page.get_by_role("button", name="Report").click()
        found["report_dialog"] = await first.axe_violations()
        await first.page.get_by_role("button", name="Cancel").click()
        await first.page.get_by_role("button", name="Skip").click()
        await phone.wait_screen("ended")
        found["ended"] = await phone.axe_violations()
        for path in ("/privacy", "/terms"):
            await phone.page.goto(web.origin + path)
            found[path] = await phone.axe_violations()
        await phone.screenshot("11-phone-privacy", full_page=True)

        assert {screen: issues for screen, issues in found.items() if issues} == {}
        assert first.errors == []
        assert phone.errors == []


async def test_keyboard_alone_reaches_a_call(nats_broker: Broker) -> None:
    skip_without_chromium()
    async with web_stack(nats_broker.url) as web, chromium() as browser:
        mouse_user = await CallPage.open(browser, "mouse", web.origin + "/")
        await mouse_user.choose_consent(False)
        await mouse_user.pass_gate()
        await mouse_user.start_call()
        await mouse_user.wait_screen("waiting")

        keyboard_user = await CallPage.open(browser, "keyboard", web.origin + "/")
        page = keyboard_user.page
        await tab_to(page, "#consent-decline")
        await page.keyboard.press("Enter")
        await tab_to(page, "#gate-confirm")
        await page.keyboard.press("Space")
        await tab_to(page, "#gate-continue")
        await page.keyboard.press("Enter")
        await keyboard_user.wait_screen("start")
        await tab_to(page, "#start-button")
        await page.keyboard.press("Enter")

        await keyboard_user.wait_screen("call")
        await keyboard_user.wait_connected()
        await page.keyboard.press("Escape")
        await keyboard_user.wait_screen("waiting")
