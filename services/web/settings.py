"""Web service settings, read once from the environment."""

import json
import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from shared.errors import ConfigError
from shared.policy import PolicySettings
from shared.settings import env_bool, env_float, env_int, env_list, env_str

DEFAULT_GATEWAY_URLS = ("http://127.0.0.1:8090", "http://127.0.0.1:8091")

# The gateway rejects longer chat messages (its CHAT_MAX_CHARS reads the same variable).
DEFAULT_CHAT_MAX_CHARS = 1000

# A valid analytics event is {"name": "<at most 16 characters>"}; 256 bytes leave room for whitespace.
DEFAULT_EVENTS_MAX_BODY_BYTES = 256

# An answerer whose offer has not arrived after this long asks the offerer for it again.
DEFAULT_NEED_OFFER_AFTER_S = 4.0

# A connection that stays disconnected or failed this long gets an ICE restart, because
# shorter gaps often heal by themselves.
DEFAULT_ICE_RESTART_AFTER_S = 3.0

# The partner's typing indicator clears after this long without another `typing` event.
DEFAULT_TYPING_IDLE_S = 3.0

# The page sends `typing` at most this often while the person types; the gateway rate-limits events.
DEFAULT_TYPING_SEND_INTERVAL_S = 1.0

# With "auto next" on, the page waits this long after the partner left, so the notice can be read.
DEFAULT_AUTO_NEXT_DELAY_S = 2.0

# With ads configured, the interstitial between calls shows this long before it closes by itself.
DEFAULT_ADS_INTERSTITIAL_S = 5.0

_ORIGIN = re.compile(r"^https?://[^/\s?#]+$")


@dataclass(frozen=True, slots=True)
class IceServer:
    """One RTCIceServer entry handed to the page as is."""

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def as_json(self) -> dict[str, object]:
        entry: dict[str, object] = {"urls": list(self.urls)}
        if self.username is not None:
            entry["username"] = self.username
        if self.credential is not None:
            entry["credential"] = self.credential
        return entry


@dataclass(frozen=True, slots=True)
class WebSettings:
    """Everything the web service reads from the environment."""

    host: str
    port: int
    gateway_urls: tuple[str, ...]
    ice_servers: tuple[IceServer, ...]
    chat_max_chars: int
    events_max_body_bytes: int
    need_offer_after_s: float
    ice_restart_after_s: float
    typing_idle_s: float
    typing_send_interval_s: float
    auto_next_delay_s: float
    ads_interstitial_s: float
    static_no_cache: bool
    log_level: str
    log_dir: str | None
    policy: PolicySettings

    @classmethod
    def from_env(cls) -> "WebSettings":
        """Read the settings; raise ConfigError naming the variable when one is invalid."""
        return cls(
            host=env_str("WEB_HOST", "127.0.0.1"),
            port=env_int("WEB_PORT", 8080, minimum=0, maximum=65535),
            gateway_urls=read_gateway_urls(env_list("GATEWAY_URLS", DEFAULT_GATEWAY_URLS)),
            ice_servers=read_ice_servers(os.environ.get("ICE_SERVERS", "")),
            chat_max_chars=env_int("CHAT_MAX_CHARS", DEFAULT_CHAT_MAX_CHARS, minimum=1, maximum=10_000),
            events_max_body_bytes=env_int("EVENTS_MAX_BODY_BYTES", DEFAULT_EVENTS_MAX_BODY_BYTES, minimum=32),
            need_offer_after_s=env_float("NEED_OFFER_AFTER_S", DEFAULT_NEED_OFFER_AFTER_S, minimum=0.5),
            ice_restart_after_s=env_float("ICE_RESTART_AFTER_S", DEFAULT_ICE_RESTART_AFTER_S, minimum=0.5),
            typing_idle_s=env_float("TYPING_IDLE_S", DEFAULT_TYPING_IDLE_S, minimum=0.5),
            typing_send_interval_s=env_float("TYPING_SEND_INTERVAL_S", DEFAULT_TYPING_SEND_INTERVAL_S, minimum=0.2),
            auto_next_delay_s=env_float("AUTO_NEXT_DELAY_S", DEFAULT_AUTO_NEXT_DELAY_S, minimum=0.0),
            ads_interstitial_s=env_float("ADS_INTERSTITIAL_S", DEFAULT_ADS_INTERSTITIAL_S, minimum=1.0),
            static_no_cache=env_bool("WEB_STATIC_NO_CACHE", True),
            log_level=env_str("LOG_LEVEL", "info"),
            log_dir=os.environ.get("LOG_DIR") or None,
            policy=PolicySettings.from_env(),
        )


def read_gateway_urls(urls: tuple[str, ...]) -> tuple[str, ...]:
    """Check that every gateway URL is a bare http(s) origin, which the CSP and Socket.IO both need."""
    if not urls:
        raise ConfigError("GATEWAY_URLS is empty; list at least one gateway, e.g. http://127.0.0.1:8090")
    for url in urls:
        if not _ORIGIN.match(url):
            raise ConfigError(f"GATEWAY_URLS entry {url!r} must be an origin like http://127.0.0.1:8090, with no path")
    return tuple(url.rstrip("/") for url in urls)


def read_ice_servers(raw: str) -> tuple[IceServer, ...]:
    """Parse ICE_SERVERS, a JSON list of RTCIceServer objects; empty means host candidates only."""
    if not raw.strip():
        return ()
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError as exc:
        example = '[{"urls": "stun:stun.example.org:3478"}]'
        raise ConfigError(f"ICE_SERVERS is not valid JSON ({exc}); use e.g. {example}") from exc
    if not isinstance(entries, list):
        raise ConfigError("ICE_SERVERS must be a JSON list of {\"urls\": ...} objects")
    return tuple(_ice_server(entry) for entry in entries)


def _ice_server(entry: object) -> IceServer:
    if not isinstance(entry, dict):
        raise ConfigError(f"ICE_SERVERS entry {entry!r} is not an object with \"urls\"")
    urls = entry.get("urls")
    url_list = [urls] if isinstance(urls, str) else urls
    if not isinstance(url_list, list) or not url_list or not all(_is_ice_url(url) for url in url_list):
        raise ConfigError(f"ICE_SERVERS entry {entry!r} needs \"urls\": stun:, turn: or turns: URLs")
    username = entry.get("username")
    credential = entry.get("credential")
    for name, value in (("username", username), ("credential", credential)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"ICE_SERVERS entry field {name!r} must be a string")
    return IceServer(tuple(url_list), username, credential)


def _is_ice_url(url: object) -> bool:
    return isinstance(url, str) and urlsplit(url).scheme in ("stun", "stuns", "turn", "turns")
