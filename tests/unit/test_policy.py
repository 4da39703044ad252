"""PolicySettings: defaults, caps that stop the service, and the third-party list."""

import pytest

from shared.errors import ConfigError
from shared.policy import MAX_BAN_DAYS, PolicySettings

POLICY_VARIABLES = (
    "BAN_STEPS_HOURS", "LOG_RETENTION_DAYS", "REPORT_THRESHOLD", "REPORT_WINDOW_HOURS", "REPORT_BLOCK_HOURS",
    "CONTACT_EMAIL", "ABUSE_EMAIL", "PRIVACY_EMAIL", "ANALYTICS_URL", "ADS_URL", "TURN_URLS",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in POLICY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_defaults_match_the_promises() -> None:
    policy = PolicySettings.from_env()

    assert policy.max_ban_days == MAX_BAN_DAYS == 30
    assert policy.ban_history_days == 30
    assert policy.ban_steps_hours == (24, 7 * 24, 30 * 24)
    assert policy.log_retention_days == 7
    assert policy.report_threshold == 3
    assert policy.report_window_hours == 24
    assert policy.report_block_hours == 24


def test_defaults_configure_no_third_party() -> None:
    policy = PolicySettings.from_env()

    assert policy.analytics_url is None
    assert policy.ads_url is None
    assert policy.third_parties == ()
    assert policy.turn_relay is False


def test_seconds_follow_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_RETENTION_DAYS", "3")
    monkeypatch.setenv("REPORT_WINDOW_HOURS", "2")
    monkeypatch.setenv("BAN_STEPS_HOURS", "1,2")

    policy = PolicySettings.from_env()

    assert policy.log_retention_s == 3 * 86400
    assert policy.report_window_s == 2 * 3600
    assert policy.ban_steps_s == (3600, 7200)
    assert policy.max_ban_s == 30 * 86400


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LOG_RETENTION_DAYS", "8", "LOG_RETENTION_DAYS=8 is above 7"),
        ("LOG_RETENTION_DAYS", "0", "below the minimum"),
        ("BAN_STEPS_HOURS", "24,721", "above the 30-day cap"),
        ("BAN_STEPS_HOURS", "168,24", "must not decrease"),
        ("BAN_STEPS_HOURS", "24,a", "whole hours"),
        ("BAN_STEPS_HOURS", ",", "names no step"),
        ("REPORT_WINDOW_HOURS", "169", "REPORT_WINDOW_HOURS=169 is above 168"),
        ("REPORT_BLOCK_HOURS", "721", "REPORT_BLOCK_HOURS=721 is above 720"),
        ("REPORT_THRESHOLD", "1", "below the minimum 2"),
        ("CONTACT_EMAIL", "not an address", "is not an email address"),
        ("ANALYTICS_URL", "http://tracker.example", "is not an https:// URL"),
    ],
)
def test_invalid_setting_stops_start(monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ConfigError) as raised:
        PolicySettings.from_env()

    assert message in str(raised.value)


def test_caps_are_accepted_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_RETENTION_DAYS", "7")
    monkeypatch.setenv("BAN_STEPS_HOURS", "720")

    policy = PolicySettings.from_env()

    assert policy.log_retention_days == 7
    assert policy.ban_steps_hours == (720,)


def test_contact_addresses_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTACT_EMAIL", "hello@example.org")
    monkeypatch.setenv("ABUSE_EMAIL", "abuse@example.org")

    policy = PolicySettings.from_env()

    assert policy.contact_email == "hello@example.org"
    assert policy.abuse_email == "abuse@example.org"
    assert policy.privacy_email == "hello@example.org"


def test_configured_third_parties_are_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANALYTICS_URL", "https://analytics.example.org/script.js")
    monkeypatch.setenv("TURN_URLS", "turn:turn.example.org:3478")

    policy = PolicySettings.from_env()

    assert [party.purpose for party in policy.third_parties] == ["analytics"]
    assert policy.third_parties[0].url == "https://analytics.example.org/script.js"
    assert policy.turn_relay is True
