"""TURN REST-API credentials: format, HMAC password, lifetime bounds, renewal and what a username may contain."""

import base64
import hashlib
import hmac
import ipaddress
import re
import uuid
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import ConfigError
from shared.ipkey import ip_key
from shared.turn import (
    DEFAULT_CREDENTIAL_LIFETIME_S,
    MAX_CREDENTIAL_LIFETIME_S,
    RENEWAL_FRACTION,
    TurnSettings,
    build_ice_servers,
    issue_credentials,
    make_password,
    make_username,
)

SECRET = "calln-unit-test-secret"
URLS = ("turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp")
USERNAME_PATTERN = re.compile(r"^(\d+):([0-9a-f]{24})$")

# Computed outside Python with:
#   printf '%s' '1700000600:00112233445566778899aabb' \
#     | openssl dgst -sha1 -hmac 'calln-unit-test-secret' -binary | base64
KNOWN_USERNAME = "1700000600:00112233445566778899aabb"
KNOWN_PASSWORD = "c/QsfdtHrDK8kuWP39qsHnVSva0="

TURN_ENV = ("TURN_URLS", "TURN_SECRET", "TURN_CREDENTIAL_LIFETIME_S")


def settings(lifetime_s: int = DEFAULT_CREDENTIAL_LIFETIME_S) -> TurnSettings:
    return TurnSettings(urls=URLS, secret=SECRET.encode(), credential_lifetime_s=lifetime_s)


def fixed_clock(now: float) -> Callable[[], float]:
    return lambda: now


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in TURN_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_password_matches_openssl_vector() -> None:
    assert make_password(SECRET.encode(), KNOWN_USERNAME) == KNOWN_PASSWORD


def test_username_is_expiry_and_random_id() -> None:
    credentials = issue_credentials(settings(), clock=fixed_clock(1_700_000_000.7))

    match = USERNAME_PATTERN.match(credentials.username)
    assert match is not None
    assert int(match.group(1)) == 1_700_000_000 + DEFAULT_CREDENTIAL_LIFETIME_S
    assert credentials.expires_at == 1_700_000_000 + DEFAULT_CREDENTIAL_LIFETIME_S


@given(now=st.floats(min_value=1e9, max_value=4e9), lifetime_s=st.integers(min_value=60, max_value=3600))
def test_password_is_base64_hmac_sha1_of_username(now: float, lifetime_s: int) -> None:
    credentials = issue_credentials(settings(lifetime_s), clock=fixed_clock(now))

    expected = base64.b64encode(hmac.digest(SECRET.encode(), credentials.username.encode(), "sha1")).decode()
    assert credentials.password == expected
    assert len(base64.b64decode(credentials.password)) == hashlib.sha1().digest_size


def test_password_changes_with_secret() -> None:
    assert make_password(b"another-secret-of-length", KNOWN_USERNAME) != KNOWN_PASSWORD


def test_each_issue_has_new_random_id() -> None:
    clock = fixed_clock(1_700_000_000.0)
    usernames = {issue_credentials(settings(), clock=clock).username for _ in range(50)}

    assert len(usernames) == 50


def test_username_rejects_separator_in_random_id() -> None:
    with pytest.raises(ValueError, match="separator"):
        make_username(1_700_000_600, "abc:def")


def test_username_built_only_from_clock_and_random_id() -> None:
    credentials = issue_credentials(settings(), clock=fixed_clock(1_700_000_000.2), random_id=lambda: "ab" * 12)

    assert credentials.username == "1700000600:" + "ab" * 12


@given(address=st.ip_addresses(), session_id=st.uuids())
def test_username_holds_no_address_or_ids(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, session_id: uuid.UUID
) -> None:
    username = issue_credentials(settings(), clock=fixed_clock(1_700_000_000.0)).username
    key = ip_key(b"unit-test-ip-key-secret", str(address))

    assert USERNAME_PATTERN.match(username) is not None
    assert str(address) not in username
    assert key not in username
    assert str(session_id) not in username
    assert session_id.hex not in username


def test_lifetime_default_is_ten_minutes(clean_env: pytest.MonkeyPatch) -> None:
    assert TurnSettings.from_env().credential_lifetime_s == 600


def test_lifetime_cap_accepts_one_hour(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TURN_CREDENTIAL_LIFETIME_S", "3600")

    assert TurnSettings.from_env().credential_lifetime_s == MAX_CREDENTIAL_LIFETIME_S == 3600


def test_lifetime_above_cap_is_config_error(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TURN_CREDENTIAL_LIFETIME_S", "3601")

    with pytest.raises(ConfigError, match="3601"):
        TurnSettings.from_env()


def test_lifetime_above_cap_rejected_in_constructor() -> None:
    with pytest.raises(ConfigError, match="7200"):
        settings(7200)


def test_lifetime_below_minimum_is_config_error(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TURN_CREDENTIAL_LIFETIME_S", "5")

    with pytest.raises(ConfigError):
        TurnSettings.from_env()


@given(now=st.floats(min_value=1e9, max_value=4e9), lifetime_s=st.integers(min_value=60, max_value=3600))
def test_renewal_falls_before_expiry(now: float, lifetime_s: int) -> None:
    credentials = issue_credentials(settings(lifetime_s), clock=fixed_clock(now))

    assert now < credentials.renew_at < credentials.expires_at
    assert credentials.renew_at == pytest.approx(now + RENEWAL_FRACTION * (credentials.expires_at - now))
    assert credentials.expires_at - credentials.renew_at >= 0.2 * (lifetime_s - 1) - 1e-6


def test_needs_renewal_at_eighty_percent() -> None:
    credentials = issue_credentials(settings(600), clock=fixed_clock(1_700_000_000.0))

    assert not credentials.needs_renewal(1_700_000_000.0)
    assert not credentials.needs_renewal(1_700_000_479.0)
    assert credentials.needs_renewal(1_700_000_480.0)
    assert credentials.needs_renewal(1_700_000_700.0)


def test_renewal_delay_is_share_of_lifetime() -> None:
    assert settings(600).renewal_delay_s == pytest.approx(480.0)


def test_ice_servers_empty_without_turn() -> None:
    disabled = TurnSettings(urls=(), secret=b"", credential_lifetime_s=DEFAULT_CREDENTIAL_LIFETIME_S)

    assert build_ice_servers(disabled) == []


def test_ice_servers_carry_urls_and_credentials() -> None:
    servers = build_ice_servers(settings(), clock=fixed_clock(1_700_000_000.0))

    assert len(servers) == 1
    server = servers[0]
    assert server["urls"] == list(URLS)
    assert USERNAME_PATTERN.match(server["username"]) is not None
    assert server["credential"] == make_password(SECRET.encode(), server["username"])


def test_ice_servers_differ_per_side() -> None:
    clock = fixed_clock(1_700_000_000.0)

    first = build_ice_servers(settings(), clock=clock)[0]
    second = build_ice_servers(settings(), clock=clock)[0]

    assert first["username"] != second["username"]
    assert first["credential"] != second["credential"]


def test_from_env_reads_urls_and_secret(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TURN_URLS", ",".join(URLS))
    clean_env.setenv("TURN_SECRET", SECRET)
    clean_env.setenv("TURN_CREDENTIAL_LIFETIME_S", "900")

    loaded = TurnSettings.from_env()

    assert loaded.urls == URLS
    assert loaded.secret == SECRET.encode()
    assert loaded.credential_lifetime_s == 900
    assert loaded.enabled


def test_from_env_without_urls_is_disabled(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TURN_SECRET", SECRET)

    assert not TurnSettings.from_env().enabled


def test_urls_without_secret_is_config_error(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TURN_URLS", URLS[0])

    with pytest.raises(ConfigError, match="TURN_SECRET"):
        TurnSettings.from_env()


def test_short_secret_is_config_error(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TURN_URLS", URLS[0])
    clean_env.setenv("TURN_SECRET", "short")

    with pytest.raises(ConfigError, match="at least 16"):
        TurnSettings.from_env()


@pytest.mark.parametrize("url", ["http://127.0.0.1:3478", "turn:", "turn::3478", "127.0.0.1:3478", "stuns:host"])
def test_invalid_url_is_config_error(clean_env: pytest.MonkeyPatch, url: str) -> None:
    clean_env.setenv("TURN_URLS", url)
    clean_env.setenv("TURN_SECRET", SECRET)

    with pytest.raises(ConfigError, match="TURN_URLS"):
        TurnSettings.from_env()


def test_secret_and_password_stay_out_of_repr() -> None:
    credentials = issue_credentials(settings(), clock=fixed_clock(1_700_000_000.0))

    assert SECRET not in repr(settings())
    assert credentials.password not in repr(credentials)
