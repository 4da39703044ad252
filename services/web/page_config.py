"""`/config.json`: what the page needs to start (gateways, ICE servers, limits, optional third parties)."""

import itertools
from collections.abc import Iterator

from aiohttp import web
from aiohttp.typedefs import Handler

from services.web.analytics import EVENT_NAMES
from services.web.settings import WebSettings


class GatewayRotation:
    """Hands out the gateway list starting one further along on every request.

    The page connects to the first URL and falls back to the next ones, so two windows
    opened one after the other land on different gateways.
    """

    def __init__(self, urls: tuple[str, ...]) -> None:
        self._urls = urls
        self._starts: Iterator[int] = itertools.cycle(range(len(urls)))

    def next_order(self) -> list[str]:
        start = next(self._starts)
        return list(self._urls[start:] + self._urls[:start])


def page_config(settings: WebSettings, gateways: list[str]) -> dict[str, object]:
    policy = settings.policy
    return {
        "gateways": gateways,
        "ice_servers": [server.as_json() for server in settings.ice_servers],
        "limits": {
            "chat_max_chars": settings.chat_max_chars,
            "need_offer_after_s": settings.need_offer_after_s,
            "ice_restart_after_s": settings.ice_restart_after_s,
            "typing_idle_s": settings.typing_idle_s,
            "typing_send_interval_s": settings.typing_send_interval_s,
            "auto_next_delay_s": settings.auto_next_delay_s,
            "ads_interstitial_s": settings.ads_interstitial_s,
        },
        "analytics_events": list(EVENT_NAMES),
        # Both stay null unless configured; the page loads them only after the person presses Accept.
        "analytics_url": policy.analytics_url,
        "ads_url": policy.ads_url,
        "relay_available": policy.turn_relay or any(_is_relay(server.urls) for server in settings.ice_servers),
    }


def _is_relay(urls: tuple[str, ...]) -> bool:
    return any(url.startswith(("turn:", "turns:")) for url in urls)


def config_handler(settings: WebSettings) -> Handler:
    rotation = GatewayRotation(settings.gateway_urls)

    async def config(_request: web.Request) -> web.Response:
        body = page_config(settings, rotation.next_order())
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    return config
