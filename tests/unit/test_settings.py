"""Environment readers, IP_KEY_SECRET checks, and services refusing to start without the secret."""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from shared.errors import ConfigError
from shared.settings import (
    DEFAULT_NATS_URL,
    MIN_IP_KEY_SECRET_CHARS,
    CommonSettings,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    read_ip_key_secret,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
NAME = "CALLN_TEST_SETTING"
SECRET = "0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def unset_test_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NAME, raising=False)


def test_env_str_default_when_unset() -> None:
    assert env_str(NAME, "fallback") == "fallback"


def test_env_str_empty_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAME, "")

    assert env_str(NAME, "fallback") == "fallback"


def test_env_str_reads_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAME, "gw-1")

    assert env_str(NAME, "fallback") == "gw-1"


def test_env_int_default_when_unset_or_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    assert env_int(NAME, 5) == 5
    monkeypatch.setenv(NAME, "")
    assert env_int(NAME, 5) == 5


@pytest.mark.parametrize(("raw", "value"), [("0", 0), ("42", 42), (" 8090 ", 8090), ("-3", -3)])
def test_env_int_reads_value(monkeypatch: pytest.MonkeyPatch, raw: str, value: int) -> None:
    monkeypatch.setenv(NAME, raw)

    assert env_int(NAME, 5) == value


@pytest.mark.parametrize("raw", ["abc", "1.5", "1e3", "0x10", "ten", "12 34"])
def test_env_int_invalid_names_variable(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(NAME, raw)

    with pytest.raises(ConfigError, match=f"{NAME}=.* is not an integer"):
        env_int(NAME, 5)


def test_env_int_bounds_inclusive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAME, "1")
    assert env_int(NAME, 5, minimum=1, maximum=10) == 1
    monkeypatch.setenv(NAME, "10")
    assert env_int(NAME, 5, minimum=1, maximum=10) == 10


def test_env_int_below_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAME, "0")

    with pytest.raises(ConfigError, match=f"{NAME}=0 is below the minimum 1"):
        env_int(NAME, 5, minimum=1, maximum=10)


def test_env_int_above_maximum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAME, "65536")

    with pytest.raises(ConfigError, match=f"{NAME}=65536 is above the maximum 65535"):
        env_int(NAME, 8090, minimum=0, maximum=65535)


def test_env_int_default_skips_bounds() -> None:
    assert env_int(NAME, 0, minimum=1) == 0


@pytest.mark.parametrize(("raw", "value"), [("0.5", 0.5), ("2", 2.0), ("1e-3", 0.001), (" 3.25 ", 3.25)])
def test_env_float_reads_value(monkeypatch: pytest.MonkeyPatch, raw: str, value: float) -> None:
    monkeypatch.setenv(NAME, raw)

    assert env_float(NAME, 1.0) == value


def test_env_float_default_when_unset_or_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    assert env_float(NAME, 1.5) == 1.5
    monkeypatch.setenv(NAME, "")
    assert env_float(NAME, 1.5) == 1.5


@pytest.mark.parametrize("raw", ["abc", "1,5", "5s", "--1"])
def test_env_float_invalid_names_variable(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(NAME, raw)

    with pytest.raises(ConfigError, match=f"{NAME}=.* is not a number"):
        env_float(NAME, 1.0)


@pytest.mark.parametrize("raw", ["nan", "NaN", "inf", "-inf", "Infinity", "1e400"])
def test_env_float_non_finite_rejected(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(NAME, raw)

    with pytest.raises(ConfigError, match=f"{NAME}=.* is not a finite number"):
        env_float(NAME, 1.0, minimum=0.1, maximum=60.0)


def test_env_float_below_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAME, "0.05")

    with pytest.raises(ConfigError, match=re.escape(f"{NAME}=0.05 is below the minimum 0.1")):
        env_float(NAME, 1.0, minimum=0.1)


def test_env_float_above_maximum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAME, "60.5")

    with pytest.raises(ConfigError, match=re.escape(f"{NAME}=60.5 is above the maximum 60.0")):
        env_float(NAME, 1.0, maximum=60.0)


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "yes", "on", " True "])
def test_env_bool_true(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(NAME, raw)

    assert env_bool(NAME, False) is True


@pytest.mark.parametrize("raw", ["0", "false", "False", "no", "off"])
def test_env_bool_false(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(NAME, raw)

    assert env_bool(NAME, True) is False


def test_env_bool_default_when_unset_or_blank(monkeypatch: pytest.MonkeyPatch) -> None:
    assert env_bool(NAME, True) is True
    monkeypatch.setenv(NAME, "  ")
    assert env_bool(NAME, False) is False


@pytest.mark.parametrize("raw", ["2", "maybe", "y", "enabled"])
def test_env_bool_invalid_names_variable(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(NAME, raw)

    with pytest.raises(ConfigError, match=f"{NAME}=.* is not a boolean; use true or false"):
        env_bool(NAME, False)


def test_env_list_default_when_unset() -> None:
    assert env_list(NAME, ("a",)) == ("a",)


def test_env_list_splits_and_strips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAME, " 192.0.2.0/24, 198.51.100.7 ,,2001:db8::/32, ")

    assert env_list(NAME) == ("192.0.2.0/24", "198.51.100.7", "2001:db8::/32")


def test_ip_key_secret_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IP_KEY_SECRET", SECRET)

    assert read_ip_key_secret() == SECRET.encode()


@pytest.mark.parametrize("value", [None, ""])
def test_ip_key_secret_missing_says_how_to_set(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("IP_KEY_SECRET", raising=False)
    else:
        monkeypatch.setenv("IP_KEY_SECRET", value)

    with pytest.raises(ConfigError) as raised:
        read_ip_key_secret()

    message = str(raised.value)
    assert "IP_KEY_SECRET is not set" in message
    assert "secrets.token_hex(32)" in message


def test_ip_key_secret_too_short(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IP_KEY_SECRET", "x" * (MIN_IP_KEY_SECRET_CHARS - 1))

    with pytest.raises(ConfigError, match=f"IP_KEY_SECRET has 15 characters; use at least {MIN_IP_KEY_SECRET_CHARS}"):
        read_ip_key_secret()


def test_ip_key_secret_at_minimum_length(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IP_KEY_SECRET", "x" * MIN_IP_KEY_SECRET_CHARS)

    assert read_ip_key_secret() == b"x" * MIN_IP_KEY_SECRET_CHARS


def test_common_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IP_KEY_SECRET", SECRET)
    for name in ("NATS_URL", "LOG_LEVEL", "LOG_DIR", "NATS_CONNECT_TIMEOUT_S"):
        monkeypatch.delenv(name, raising=False)

    settings = CommonSettings.from_env()

    assert settings == CommonSettings(
        nats_url=DEFAULT_NATS_URL,
        ip_key_secret=SECRET.encode(),
        log_level="info",
        log_dir=None,
        nats_connect_timeout_s=5.0,
    )


def test_common_settings_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("IP_KEY_SECRET", SECRET)
    monkeypatch.setenv("NATS_URL", "nats://127.0.0.1:14222")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("LOG_DIR", str(tmp_path))
    monkeypatch.setenv("NATS_CONNECT_TIMEOUT_S", "0.5")

    settings = CommonSettings.from_env()

    assert settings.nats_url == "nats://127.0.0.1:14222"
    assert settings.log_level == "debug"
    assert settings.log_dir == str(tmp_path)
    assert settings.nats_connect_timeout_s == 0.5


def test_common_settings_timeout_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IP_KEY_SECRET", SECRET)
    monkeypatch.setenv("NATS_CONNECT_TIMEOUT_S", "0")

    with pytest.raises(ConfigError, match=re.escape("NATS_CONNECT_TIMEOUT_S=0.0 is below the minimum 0.1")):
        CommonSettings.from_env()


def unused_loopback_url() -> str:
    """A NATS URL on a loopback port that nothing listens on, so a stray connect fails fast."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"nats://127.0.0.1:{port}"


def service_env(secret: str | None) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name != "IP_KEY_SECRET"}
    env["NATS_URL"] = unused_loopback_url()
    env["NATS_CONNECT_TIMEOUT_S"] = "0.5"
    env.pop("LOG_DIR", None)
    if secret is not None:
        env["IP_KEY_SECRET"] = secret
    return env


@pytest.mark.parametrize("service", ["services.matcher", "services.signalling"])
@pytest.mark.parametrize(("secret", "expected"), [(None, "IP_KEY_SECRET is not set"), ("short", "IP_KEY_SECRET has 5")])
def test_service_without_secret_exits_2(service: str, secret: str | None, expected: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", service],
        cwd=REPO_ROOT,
        env=service_env(secret),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 2, result.stderr
    assert "configuration error" in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
