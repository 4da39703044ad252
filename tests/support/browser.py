"""Headless Chromium for browser tests: the web service in-process beside a stack, and page helpers.

Chromium is Debian's package, driven by Playwright with its executable path; no browser is downloaded.
"""

import dataclasses
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Request, WebSocket, async_playwright

from services.signalling.games import validate_game
from services.web.app import create_app, missing_vendor_files
from services.web.settings import WebSettings
from shared.ops import start_site
from tests.support.nats_server import free_port
from tests.support.stack import REPO_ROOT, Stack, running_stack

CHROMIUM_PATH = "/usr/bin/chromium"

# No sandbox: tests run as root in CI. The rest keeps Chromium from calling home (updates, sync, QUIC probes).
BASE_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)

# A fake microphone (a beeping tone) that needs no permission prompt.
FAKE_MEDIA_ARGS = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream")

AXE_PATH = Path(REPO_ROOT) / "node_modules" / "axe-core" / "axe.min.js"
# Screenshots replace the committed ones in docs/screenshots/ only with UPDATE_SCREENSHOTS=1
# (`make screenshots`); other runs take none, so a test run leaves the work tree clean.
SCREENSHOT_DIR = Path(REPO_ROOT) / "docs" / "screenshots"
UPDATE_SCREENSHOTS = os.environ.get("UPDATE_SCREENSHOTS") == "1"

# Client addresses the pages claim through X-Forwarded-For, which the test gateways trust from loopback.
# They are used only as data: the gateway derives a country and an ip_key from them, and pages with
# different addresses can report each other (a report against one's own address is rejected).
ADDRESS_GB = "81.2.69.160"
ADDRESS_SE = "89.160.20.112"

# Seconds to wait for one page condition; a call on loopback connects in well under a second.
DEFAULT_WAIT_S = 15.0

# Records every RTCPeerConnection and microphone stream the page creates, without changing the page's code.
RECORDER_SCRIPT = """
(() => {
  const seen = { pcs: [], streams: [] };
  window.__calln_test = seen;
  const NativePeerConnection = window.RTCPeerConnection;
  window.RTCPeerConnection = function (...args) {
    const pc = new NativePeerConnection(...args);
    seen.pcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = NativePeerConnection.prototype;
  const media = navigator.mediaDevices;
  if (media && media.getUserMedia) {
    const nativeGetUserMedia = media.getUserMedia.bind(media);
    media.getUserMedia = async (constraints) => {
      const stream = await nativeGetUserMedia(constraints);
      seen.streams.push(stream);
      return stream;
    };
  }
})();
"""


def skip_without_chromium() -> None:
    if not os.path.exists(CHROMIUM_PATH):
        pytest.skip(f"{CHROMIUM_PATH} is missing; install Debian's chromium package (make test does as root)")


def require_vendor_files() -> None:
    missing = missing_vendor_files()
    if missing:
        pytest.fail(f"services/web/static/vendor lacks {missing}; run `npm ci && python scripts/copy_assets.py`")


@dataclass
class WebStack:
    """The web service and two gateways plus a matcher, all on free loopback ports."""

    origin: str
    stack: Stack
    settings: WebSettings

    @property
    def gateway_origins(self) -> set[str]:
        origins = set()
        for url in self.settings.gateway_urls:
            netloc = urlsplit(url).netloc
            origins |= {f"http://{netloc}", f"ws://{netloc}"}
        return origins


@asynccontextmanager
async def web_stack(
    nats_url: str, bans: Any = None, gateway_overrides: dict[str, Any] | None = None, **web_overrides: Any
) -> AsyncIterator[WebStack]:
    """Run a matcher, two gateways (games on, with an optional ban lookup) and the web service in this loop.

    `gateway_overrides` adds GatewaySettings fields (e.g. `turn`) to the page origin and trusted proxy set here.
    """
    require_vendor_files()
    web_port = free_port()
    origin = f"http://127.0.0.1:{web_port}"
    async with running_stack(
        nats_url,
        gateways=2,
        game_validator=validate_game,
        bans=bans,
        gateway_overrides={
            "allowed_origins": (origin,),
            "trusted_proxies": ("127.0.0.1/32",),
            **(gateway_overrides or {}),
        },
    ) as stack:
        settings = dataclasses.replace(
            WebSettings.from_env(),
            host="127.0.0.1",
            port=web_port,
            gateway_urls=(stack.url(0), stack.url(1)),
            **web_overrides,
        )
        runner, _port = await start_site(create_app(settings), "127.0.0.1", web_port)
        try:
            yield WebStack(origin, stack, settings)
        finally:
            await runner.cleanup()


@asynccontextmanager
async def chromium(extra_args: Sequence[str] = FAKE_MEDIA_ARGS) -> AsyncIterator[Browser]:
    skip_without_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=[*BASE_ARGS, *extra_args])
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class CallPage:
    """One browser context with one page, recording console errors and every network request."""

    name: str
    context: BrowserContext
    page: Page
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    @classmethod
    async def open(
        cls,
        browser: Browser,
        name: str,
        url: str,
        init_scripts: Sequence[str] = (),
        address: str | None = None,
        **context_options: Any,
    ) -> "CallPage":
        """Open `url` in a new context; `address` is the client address the gateway should see."""
        if address is not None:
            context_options["extra_http_headers"] = {"X-Forwarded-For": address}
        context = await browser.new_context(**context_options)
        await context.add_init_script(RECORDER_SCRIPT)
        for script in init_scripts:
            await context.add_init_script(script)
        page = await context.new_page()
        call_page = cls(name, context, page)
        page.on("console", call_page._on_console)
        page.on("pageerror", lambda error: call_page.errors.append(f"pageerror: {error}"))
        page.on("request", call_page._on_request)
        page.on("websocket", call_page._on_websocket)
        await page.goto(url)
        return call_page

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console.error: {message.text}")

    def _on_request(self, request: Request) -> None:
        self.requests.append(f"{request.method} {request.url}")

    def _on_websocket(self, socket: WebSocket) -> None:
        self.requests.append(f"WEBSOCKET {socket.url}")

    def request_urls(self) -> list[str]:
        return [entry.split(" ", 1)[1] for entry in self.requests]

    async def close(self) -> None:
        await self.context.close()

    # -- steps a person takes ------------------------------------------------------------------

    async def pass_gate(self) -> None:
        await self.page.get_by_label("I am 18 or older").check()
        await self.page.get_by_role("button", name="Continue").click()
        await self.wait_screen("start")

    async def choose_consent(self, accept: bool) -> None:
        await self.page.get_by_role("button", name="Accept" if accept else "Decline").click()
        await self.page.wait_for_selector("#consent-banner", state="hidden")

    async def start_call(self) -> None:
        await self.page.get_by_role("button", name="Start a call").click()

    async def wait_screen(self, screen: str, timeout_s: float = DEFAULT_WAIT_S) -> None:
        await self.page.wait_for_selector(f"#screen-{screen}:not([hidden])", timeout=timeout_s * 1000)

    async def text(self, selector: str) -> str:
        return (await self.page.locator(selector).inner_text()).strip()

    # -- what the page's WebRTC objects report -------------------------------------------------

    async def wait_connected(self, timeout_s: float = DEFAULT_WAIT_S) -> None:
        await self.page.wait_for_function(
            "() => { const pcs = window.__calln_test.pcs; return pcs.length > 0 && "
            "pcs[pcs.length - 1].connectionState === 'connected'; }",
            timeout=timeout_s * 1000,
        )

    async def inbound_audio_bytes(self) -> int:
        return int(
            await self.page.evaluate(
                """async () => {
                const pcs = window.__calln_test.pcs;
                const stats = await pcs[pcs.length - 1].getStats();
                let bytes = 0;
                stats.forEach((report) => {
                    if (report.type === 'inbound-rtp' && report.kind === 'audio') { bytes += report.bytesReceived; }
                });
                return bytes;
            }"""
            )
        )

    async def track_states(self) -> list[str]:
        """Return readyState of every track the page obtained: microphone streams, senders and receivers."""
        states = await self.page.evaluate(
            """() => {
                const seen = window.__calln_test;
                const tracks = new Set();
                for (const stream of seen.streams) { stream.getTracks().forEach((track) => tracks.add(track)); }
                for (const pc of seen.pcs) {
                    pc.getSenders().forEach((sender) => sender.track && tracks.add(sender.track));
                    pc.getReceivers().forEach((receiver) => receiver.track && tracks.add(receiver.track));
                }
                return [...tracks].map((track) => track.readyState);
            }"""
        )
        return [str(state) for state in states]

    async def screenshot(self, name: str, full_page: bool = False) -> None:
        if not UPDATE_SCREENSHOTS:
            return
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"), full_page=full_page)

    async def axe_violations(self) -> list[dict[str, Any]]:
        """Run axe-core (from node_modules) in the page; return serious and critical violations."""
        if not AXE_PATH.is_file():
            pytest.fail(f"{AXE_PATH} is missing; run `npm ci`")
        # Served from the page's own origin by route, so the page's CSP (script-src 'self') stays in force.
        axe_url = urlsplit(self.page.url)._replace(path="/__test__/axe.min.js", query="").geturl()
        await self.page.route(axe_url, lambda route: route.fulfill(path=str(AXE_PATH), content_type="text/javascript"))
        already = await self.page.evaluate("() => typeof window.axe !== 'undefined'")
        if not already:
            await self.page.add_script_tag(url=axe_url)
        results = await self.page.evaluate(
            "async () => (await axe.run(document, { resultTypes: ['violations'] })).violations"
            ".filter((v) => v.impact === 'serious' || v.impact === 'critical')"
            ".map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target) }))"
        )
        return list(results)


async def tab_to(page: Page, selector: str, max_presses: int = 30) -> None:
    """Press Tab until the element matching `selector` has focus, as a keyboard user would."""
    for _ in range(max_presses):
        if await page.evaluate("(selector) => document.activeElement?.matches(selector) ?? false", selector):
            return
        await page.keyboard.press("Tab")
    raise AssertionError(f"{selector} not reached with {max_presses} Tab presses")
