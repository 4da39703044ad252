"""Moderation settings, read once from the environment."""

import os
from dataclasses import dataclass

from shared.errors import ConfigError
from shared.policy import PolicySettings
from shared.settings import CommonSettings, env_float, env_int, env_str

# A bearer token shorter than this can be guessed by a patient client on the admin port.
MIN_ADMIN_TOKEN_CHARS = 16

# Ban records are deleted within this many seconds after their end time.
DEFAULT_BAN_PURGE_INTERVAL_S = 5.0

# Log files are checked hourly; with a 7-day limit a file lives at most 7 days and 1 hour.
DEFAULT_LOG_PURGE_INTERVAL_S = 3600.0

# Purge and delete markers stay this long, so every gateway's watcher receives an erase before
# the marker, which still names the key, is removed from the stream.
DEFAULT_MARKER_GRACE_S = 60.0


@dataclass(frozen=True, slots=True)
class ModerationSettings:
    """Everything the moderation service reads from the environment."""

    common: CommonSettings
    policy: PolicySettings
    http_host: str
    http_port: int
    admin_host: str
    admin_port: int
    admin_token: str | None
    previous_ip_key_secret: bytes | None
    reports_per_hour: int
    ban_purge_interval_s: float
    log_purge_interval_s: float
    marker_grace_s: float
    kv_timeout_s: float

    @classmethod
    def from_env(cls) -> "ModerationSettings":
        previous = os.environ.get("IP_KEY_SECRET_PREVIOUS")
        return cls(
            common=CommonSettings.from_env(),
            policy=PolicySettings.from_env(),
            http_host=env_str("MODERATION_HTTP_HOST", "127.0.0.1"),
            http_port=env_int("MODERATION_HTTP_PORT", 8094, minimum=0, maximum=65535),
            admin_host=env_str("ADMIN_HOST", "127.0.0.1"),
            admin_port=env_int("ADMIN_PORT", 8095, minimum=0, maximum=65535),
            admin_token=_admin_token(),
            previous_ip_key_secret=previous.encode() if previous else None,
            reports_per_hour=env_int("REPORTS_PER_HOUR", 5, minimum=1),
            ban_purge_interval_s=env_float("BAN_PURGE_INTERVAL_S", DEFAULT_BAN_PURGE_INTERVAL_S, minimum=0.05),
            log_purge_interval_s=env_float(
                "LOG_PURGE_INTERVAL_S", DEFAULT_LOG_PURGE_INTERVAL_S, minimum=0.05, maximum=DEFAULT_LOG_PURGE_INTERVAL_S
            ),
            marker_grace_s=env_float("MARKER_GRACE_S", DEFAULT_MARKER_GRACE_S, minimum=0.0, maximum=3600.0),
            kv_timeout_s=env_float("KV_TIMEOUT_S", 5.0, minimum=0.1),
        )


def _admin_token() -> str | None:
    token = os.environ.get("ADMIN_TOKEN", "")
    if not token:
        return None
    if len(token) < MIN_ADMIN_TOKEN_CHARS:
        raise ConfigError(
            f"ADMIN_TOKEN has {len(token)} characters; use at least {MIN_ADMIN_TOKEN_CHARS}, "
            "e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    return token
