"""Matcher settings, read once from the environment."""

import secrets
from dataclasses import dataclass

from shared.settings import CommonSettings, env_float, env_int, env_str

# A lease shorter than a few heartbeats flaps under load; longer ones delay failover.
DEFAULT_LEASE_TTL_S = 3.0


@dataclass(frozen=True, slots=True)
class MatcherSettings:
    """Everything the matcher reads from the environment."""

    common: CommonSettings
    matcher_id: str
    http_host: str
    http_port: int
    lease_ttl_s: float
    confirm_timeout_s: float
    heartbeat_interval_s: float
    missed_heartbeats: int
    widen_after_s: float
    recent_override_after_s: float
    tick_interval_s: float
    epoch_announce_interval_s: float

    @classmethod
    def from_env(cls) -> "MatcherSettings":
        return cls(
            common=CommonSettings.from_env(),
            matcher_id=env_str("MATCHER_ID", "matcher-" + secrets.token_hex(4)),
            http_host=env_str("MATCHER_HTTP_HOST", "127.0.0.1"),
            http_port=env_int("MATCHER_HTTP_PORT", 8092, minimum=0, maximum=65535),
            lease_ttl_s=env_float("LEASE_TTL_S", DEFAULT_LEASE_TTL_S, minimum=1.0),
            confirm_timeout_s=env_float("CONFIRM_TIMEOUT_S", 2.0, minimum=0.1),
            heartbeat_interval_s=env_float("HEARTBEAT_INTERVAL_S", 1.0, minimum=0.05),
            missed_heartbeats=env_int("MISSED_HEARTBEATS", 3, minimum=1),
            widen_after_s=env_float("WIDEN_AFTER_S", 10.0, minimum=0.0),
            recent_override_after_s=env_float("RECENT_OVERRIDE_AFTER_S", 10.0, minimum=0.0),
            tick_interval_s=env_float("MATCHER_TICK_INTERVAL_S", 0.1, minimum=0.01),
            epoch_announce_interval_s=env_float("EPOCH_ANNOUNCE_INTERVAL_S", 1.0, minimum=0.05),
        )
