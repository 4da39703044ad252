"""Gateway settings, read once from the environment."""

import ipaddress
import json
import os
import secrets
from dataclasses import dataclass

from shared.errors import ConfigError
from shared.policy import PolicySettings
from shared.settings import CommonSettings, env_float, env_int, env_list, env_str
from shared.turn import TurnSettings

DEFAULT_ALLOWED_ORIGINS = ("http://127.0.0.1:8080", "http://localhost:8080")


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Everything a gateway reads from the environment."""

    common: CommonSettings
    gateway_id: str
    host: str
    port: int
    allowed_origins: tuple[str, ...]
    trusted_proxies: tuple[str, ...]
    ice_servers: tuple[dict[str, object], ...]
    turn: TurnSettings
    chat_max_chars: int
    signal_max_bytes: int
    game_max_bytes: int
    events_per_second: float
    event_burst: int
    reports_per_hour: int
    report_grace_s: float
    policy: PolicySettings
    heartbeat_interval_s: float
    confirm_timeout_s: float
    online_interval_s: float
    recent_partners: int
    recent_window_s: float
    drain_timeout_s: float
    resume_grace_s: float
    resume_token_ttl_s: float
    rejoin_interval_s: float
    previous_ip_key_secret: bytes | None

    @classmethod
    def from_env(cls) -> "GatewaySettings":
        port = env_int("GATEWAY_PORT", 8090, minimum=0, maximum=65535)
        previous = os.environ.get("IP_KEY_SECRET_PREVIOUS")
        return cls(
            common=CommonSettings.from_env(),
            gateway_id=env_str("GATEWAY_ID", f"gw-{port}-{secrets.token_hex(3)}"),
            host=env_str("GATEWAY_HOST", "127.0.0.1"),
            port=port,
            allowed_origins=env_list("ALLOWED_ORIGINS", DEFAULT_ALLOWED_ORIGINS),
            trusted_proxies=_read_trusted_proxies(),
            ice_servers=_read_ice_servers(),
            turn=TurnSettings.from_env(),
            chat_max_chars=env_int("CHAT_MAX_CHARS", 1000, minimum=1),
            signal_max_bytes=env_int("SIGNAL_MAX_BYTES", 64 * 1024, minimum=256, maximum=96 * 1024),
            game_max_bytes=env_int("GAME_MAX_BYTES", 1024, minimum=64),
            events_per_second=env_float("EVENTS_PER_SECOND", 20.0, minimum=0.1),
            event_burst=env_int("EVENT_BURST", 60, minimum=1),
            reports_per_hour=env_int("REPORTS_PER_HOUR", 5, minimum=1),
            report_grace_s=env_float("REPORT_GRACE_S", 120.0, minimum=0.0),
            policy=PolicySettings.from_env(),
            heartbeat_interval_s=env_float("HEARTBEAT_INTERVAL_S", 1.0, minimum=0.05),
            confirm_timeout_s=env_float("CONFIRM_TIMEOUT_S", 2.0, minimum=0.1),
            online_interval_s=env_float("ONLINE_INTERVAL_S", 5.0, minimum=0.1),
            recent_partners=env_int("RECENT_PARTNERS", 5, minimum=0),
            recent_window_s=env_float("RECENT_WINDOW_S", 300.0, minimum=0.0),
            drain_timeout_s=env_float("DRAIN_TIMEOUT_S", 10.0, minimum=0.0),
            resume_grace_s=env_float("RESUME_GRACE_S", 5.0, minimum=0.0),
            rejoin_interval_s=env_float("REJOIN_INTERVAL_S", 5.0, minimum=0.5),
            resume_token_ttl_s=env_float("RESUME_TOKEN_TTL_S", 300.0, minimum=10.0, maximum=3600.0),
            previous_ip_key_secret=previous.encode() if previous else None,
        )


def _read_trusted_proxies() -> tuple[str, ...]:
    proxies = env_list("TRUSTED_PROXIES", ())
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError as exc:
            raise ConfigError(f"TRUSTED_PROXIES entry {proxy!r} is not an address or network") from exc
    return proxies


def _read_ice_servers() -> tuple[dict[str, object], ...]:
    raw = os.environ.get("ICE_SERVERS", "")
    if not raw:
        return ()
    try:
        servers = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"ICE_SERVERS is not valid JSON: {exc}") from exc
    if not isinstance(servers, list) or not all(isinstance(server, dict) and "urls" in server for server in servers):
        raise ConfigError('ICE_SERVERS must be a JSON list of {"urls": ...} objects')
    return tuple(servers)
