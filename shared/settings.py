"""Readers for settings taken from the environment, and the settings every service shares."""

import math
import os
from dataclasses import dataclass
from typing import TypeVar

from shared.errors import ConfigError

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"

# An HMAC key shorter than this is easy to brute-force over the IPv4 space.
MIN_IP_KEY_SECRET_CHARS = 16

# Log files older than this are deleted; the privacy policy promises 7 days at most.
MAX_LOG_RETENTION_DAYS = 7

N = TypeVar("N", int, float)


def env_str(name: str, default: str) -> str:
    """Read a string setting; an empty value counts as unset."""
    return os.environ.get(name) or default


def env_int(name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
    """Read an integer setting and check its bounds."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not an integer") from exc
    return _bounded(name, value, minimum, maximum)


def env_float(name: str, default: float, minimum: float | None = None, maximum: float | None = None) -> float:
    """Read a finite number setting and check its bounds."""
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a number") from exc
    # float() accepts "nan" and "inf". NaN passes every bound check, and an infinite interval never fires.
    if not math.isfinite(value):
        raise ConfigError(f"{name}={raw!r} is not a finite number")
    return _bounded(name, value, minimum, maximum)


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean setting written as 1/0, true/false or yes/no."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean; use true or false")


def env_list(name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Read a comma-separated list setting."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _bounded(name: str, value: N, minimum: N | None, maximum: N | None) -> N:
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value} is below the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}={value} is above the maximum {maximum}")
    return value


@dataclass(frozen=True, slots=True)
class CommonSettings:
    """Settings that every service reads the same way."""

    nats_url: str
    ip_key_secret: bytes
    log_level: str
    log_dir: str | None
    nats_connect_timeout_s: float

    @classmethod
    def from_env(cls) -> "CommonSettings":
        return cls(
            nats_url=env_str("NATS_URL", DEFAULT_NATS_URL),
            ip_key_secret=read_ip_key_secret(),
            log_level=env_str("LOG_LEVEL", "info"),
            log_dir=os.environ.get("LOG_DIR") or None,
            nats_connect_timeout_s=env_float("NATS_CONNECT_TIMEOUT_S", 5.0, minimum=0.1),
        )


def read_ip_key_secret() -> bytes:
    """Read IP_KEY_SECRET, which every service needs, or raise ConfigError saying how to set it."""
    secret = os.environ.get("IP_KEY_SECRET", "")
    if not secret:
        raise ConfigError(
            "IP_KEY_SECRET is not set. Every service needs the same secret to derive ip_keys; "
            "generate one with `python -c 'import secrets; print(secrets.token_hex(32))'` "
            "(make run does this for you)."
        )
    if len(secret) < MIN_IP_KEY_SECRET_CHARS:
        raise ConfigError(f"IP_KEY_SECRET has {len(secret)} characters; use at least {MIN_IP_KEY_SECRET_CHARS}")
    return secret.encode()
