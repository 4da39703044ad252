"""Two headless Chromium pages, in separate browser contexts, get a call through the real web page."""

import pytest

from tests.support.browser import CallPage, chromium, skip_without_chromium, web_stack
from tests.support.nats_server import Broker

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


async def test_two_pages_reach_connected(nats_broker: Broker) -> None:
    skip_without_chromium()
    async with web_stack(nats_broker.url) as web, chromium() as browser:
        first = await CallPage.open(browser, "first", web.origin + "/")
        second = await CallPage.open(browser, "second", web.origin + "/")
        for page in (first, second):
            await page.pass_gate()
            await page.start_call()

        for page in (first, second):
            await page.wait_screen("call")
            await page.wait_connected()

        assert await first.text("#connection-state") == "Connected"
        assert await second.text("#connection-state") == "Connected"
        assert first.errors == []
        assert second.errors == []
