"""Short-lived TURN credentials in coturn's REST-API scheme (`use-auth-secret`), and the ice_servers list
that `matched` hands to each side of a call.

Username: `<expiry unix time>:<random id>`. Password: base64(HMAC-SHA1(TURN_SECRET, username)).
coturn recomputes the password from the shared secret and rejects a username whose expiry has passed.
"""

import base64
import hashlib
import hmac
import math
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypedDict

from shared.errors import ConfigError
from shared.settings import env_int, env_list

# Ten minutes covers call setup and an ICE restart or two, and a leaked credential is useless soon after.
DEFAULT_CREDENTIAL_LIFETIME_S = 600

# Credentials expire within an hour at most, so that a leaked one soon stops working. A larger setting is an error.
MAX_CREDENTIAL_LIFETIME_S = 3600

# A browser needs the credentials for the whole of ICE gathering and for the renewal round trip.
MIN_CREDENTIAL_LIFETIME_S = 60

# Fresh credentials go out after this share of the lifetime, which leaves the rest (120 s at the default)
# for the event to reach the client before the old username expires.
RENEWAL_FRACTION = 0.8

# Anyone who learns the secret can mint credentials, and shorter secrets are open to offline brute force.
MIN_TURN_SECRET_CHARS = 16

# 12 random bytes (24 hex characters): an id that never repeats in practice and carries nothing about the user.
RANDOM_ID_BYTES = 12

# Schemes browsers and aiortc accept in RTCIceServer.urls (RFC 7064 for stun:, RFC 7065 for turn:/turns:).
ICE_URL_SCHEMES = ("turn:", "turns:", "stun:")

Clock = Callable[[], float]


class IceServer(TypedDict):
    """One RTCIceServer dictionary as the browser's RTCPeerConnection expects it."""

    urls: list[str]
    username: str
    credential: str


@dataclass(frozen=True, slots=True)
class TurnSettings:
    """TURN relay settings. The relay is off when `urls` is empty."""

    urls: tuple[str, ...]
    secret: bytes = field(repr=False)
    credential_lifetime_s: int

    def __post_init__(self) -> None:
        lifetime_s = self.credential_lifetime_s
        if not MIN_CREDENTIAL_LIFETIME_S <= lifetime_s <= MAX_CREDENTIAL_LIFETIME_S:
            raise ConfigError(
                f"TURN credential lifetime {lifetime_s} s is outside "
                f"{MIN_CREDENTIAL_LIFETIME_S}..{MAX_CREDENTIAL_LIFETIME_S} s"
            )

    @property
    def enabled(self) -> bool:
        return bool(self.urls)

    @property
    def renewal_delay_s(self) -> float:
        """Seconds after issuing at which a holder of credentials should receive fresh ones."""
        return RENEWAL_FRACTION * self.credential_lifetime_s

    @classmethod
    def from_env(cls) -> "TurnSettings":
        """Read TURN_URLS, TURN_SECRET and TURN_CREDENTIAL_LIFETIME_S, raising ConfigError on invalid values."""
        urls = env_list("TURN_URLS")
        for url in urls:
            check_ice_url(url)

        lifetime_s = env_int(
            "TURN_CREDENTIAL_LIFETIME_S",
            DEFAULT_CREDENTIAL_LIFETIME_S,
            minimum=MIN_CREDENTIAL_LIFETIME_S,
            maximum=MAX_CREDENTIAL_LIFETIME_S,
        )
        secret = os.environ.get("TURN_SECRET", "")
        if urls:
            check_turn_secret(secret)
        return cls(urls=urls, secret=secret.encode(), credential_lifetime_s=lifetime_s)


@dataclass(frozen=True, slots=True)
class TurnCredentials:
    """One username and password pair, valid until `expires_at` (unix seconds)."""

    username: str
    password: str = field(repr=False)
    issued_at: float
    expires_at: int

    @property
    def renew_at(self) -> float:
        """Unix time after which the holder should receive fresh credentials."""
        return self.issued_at + RENEWAL_FRACTION * (self.expires_at - self.issued_at)

    def needs_renewal(self, now: float) -> bool:
        return now >= self.renew_at


def check_ice_url(url: str) -> None:
    """Raise ConfigError unless `url` is a stun:, turn: or turns: URL with a host."""
    scheme = next((prefix for prefix in ICE_URL_SCHEMES if url.startswith(prefix)), None)
    if scheme is None:
        raise ConfigError(f"TURN_URLS entry {url!r} must start with one of {', '.join(ICE_URL_SCHEMES)}")

    host = url[len(scheme) :].split("?", 1)[0]
    if not host or host.startswith(":"):
        raise ConfigError(f"TURN_URLS entry {url!r} has no host; write e.g. turn:turn.example.org:3478")


def check_turn_secret(secret: str) -> None:
    """Raise ConfigError unless the TURN secret is set and long enough."""
    if not secret:
        raise ConfigError(
            "TURN_URLS is set but TURN_SECRET is not. Set TURN_SECRET to the static-auth-secret coturn runs "
            "with, e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`, or unset TURN_URLS."
        )
    if len(secret) < MIN_TURN_SECRET_CHARS:
        raise ConfigError(f"TURN_SECRET has {len(secret)} characters; use at least {MIN_TURN_SECRET_CHARS}")


def new_random_id() -> str:
    return secrets.token_hex(RANDOM_ID_BYTES)


def make_username(expires_at: int, random_id: str) -> str:
    """Build `<expiry>:<random id>`. Raise ValueError when the random id contains the `:` separator."""
    if ":" in random_id:
        raise ValueError(f"random id {random_id!r} contains ':', which coturn reads as the separator")
    return f"{expires_at}:{random_id}"


def make_password(secret: bytes, username: str) -> str:
    """Compute base64(HMAC-SHA1(secret, username)), the password coturn expects for `username`."""
    digest = hmac.new(secret, username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def issue_credentials(
    settings: TurnSettings,
    clock: Clock = time.time,
    random_id: Callable[[], str] = new_random_id,
) -> TurnCredentials:
    """Create credentials that expire `credential_lifetime_s` seconds from now."""
    now = clock()
    expires_at = math.floor(now) + settings.credential_lifetime_s
    username = make_username(expires_at, random_id())
    return TurnCredentials(
        username=username,
        password=make_password(settings.secret, username),
        issued_at=now,
        expires_at=expires_at,
    )


def ice_servers_for(settings: TurnSettings, credentials: TurnCredentials) -> list[IceServer]:
    """Put the TURN URLs and one set of credentials into an RTCIceServer list."""
    server: IceServer = {
        "urls": list(settings.urls),
        "username": credentials.username,
        "credential": credentials.password,
    }
    return [server]


def build_ice_servers(settings: TurnSettings, clock: Clock = time.time) -> list[IceServer]:
    """Issue fresh credentials and return the ice_servers list for one side of a call ([] when TURN is off)."""
    if not settings.enabled:
        return []
    return ice_servers_for(settings, issue_credentials(settings, clock))
