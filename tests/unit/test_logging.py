"""Log privacy filter, JSON lines and the daily log file."""

import datetime
import io
import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import structlog

from shared import logging as calln_logging
from shared.logging import DROPPED_FIELDS, KEY_PREFIX_CHARS, DailyFileWriter, drop_private_fields

REPO_ROOT = Path(__file__).resolve().parents[2]
FULL_KEY = "0123456789abcdef" * 4
PRIVATE_VALUES = {
    "text": "hello, my phone number is 555-0100",
    "sdp": "v=0\r\no=- 46117317 2 IN IP4 192.0.2.10\r\n",
    "data": {"candidate": "candidate:1 1 udp 2122260223 192.0.2.10 54321 typ host"},
    "ip": "192.0.2.10",
    "address": "2001:db8::10",
    "remote": "198.51.100.10",
    "forwarded_for": "203.0.113.10, 198.51.100.1",
    "candidate": "candidate:2 1 udp 1686052607 203.0.113.10 40000 typ srflx",
}


def json_logger(writer: DailyFileWriter) -> Any:
    """A logger with the filter and renderer that configure_logging installs, without global state."""
    return structlog.wrap_logger(
        writer,
        processors=[drop_private_fields, structlog.processors.JSONRenderer()],
    )


def utc_days_around(action: Any) -> set[str]:
    """Run `action` and return the UTC dates seen before and after it, in case midnight passes."""
    before = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    action()
    after = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    return {before, after}


def test_dropped_fields_cover_private_values() -> None:
    assert set(PRIVATE_VALUES) <= DROPPED_FIELDS


@pytest.mark.parametrize("name", sorted(PRIVATE_VALUES))
def test_filter_drops_private_field(name: str) -> None:
    event_dict = {"event": "chat_relayed", name: PRIVATE_VALUES[name]}

    filtered = drop_private_fields(None, "info", event_dict)

    assert filtered[name] != PRIVATE_VALUES[name]
    assert str(PRIVATE_VALUES[name]) not in json.dumps(dict(filtered))
    assert filtered["event"] == "chat_relayed"


@pytest.mark.parametrize("name", ["ip_key", "partner_key", "reporter_key", "reported_key"])
def test_filter_cuts_key_fields(name: str) -> None:
    filtered = drop_private_fields(None, "info", {"event": "x", name: FULL_KEY})

    assert filtered[name] == FULL_KEY[:KEY_PREFIX_CHARS]
    assert len(filtered[name]) == 8


def test_filter_keeps_short_and_non_string_keys() -> None:
    filtered = drop_private_fields(None, "info", {"event": "x", "ip_key": "abc", "partner_key": None})

    assert filtered["ip_key"] == "abc"
    assert filtered["partner_key"] is None


def test_filter_keeps_other_fields() -> None:
    event_dict = {"event": "call_started", "call_id": "c1", "session_id": "s1", "country": "GB", "keys": 3}

    filtered = drop_private_fields(None, "info", dict(event_dict))

    assert filtered == event_dict


def test_json_line_on_stream() -> None:
    stream = io.StringIO()
    log = json_logger(DailyFileWriter("gateway", None, stream))

    log.info("session_connected", session_id="s1", ip_key=FULL_KEY, text="secret chat", ip="192.0.2.10")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "session_connected"
    assert record["session_id"] == "s1"
    assert record["ip_key"] == FULL_KEY[:8]
    assert "secret chat" not in lines[0]
    assert "192.0.2.10" not in lines[0]
    assert FULL_KEY not in lines[0]


def test_daily_file_written(tmp_path: Path) -> None:
    stream = io.StringIO()
    log_dir = tmp_path / "logs"
    log = json_logger(DailyFileWriter("matcher", str(log_dir), stream))

    days = utc_days_around(lambda: log.info("pair_made", call_id="c1"))

    files = list(log_dir.iterdir())
    assert len(files) == 1
    assert files[0].name in {f"matcher-{day}.log" for day in days}
    assert files[0].read_text(encoding="utf-8") == stream.getvalue()
    assert json.loads(files[0].read_text(encoding="utf-8"))["call_id"] == "c1"


def test_daily_file_appends(tmp_path: Path) -> None:
    first = DailyFileWriter("matcher", str(tmp_path), io.StringIO())
    first.msg('{"event": "one"}')
    second = DailyFileWriter("matcher", str(tmp_path), io.StringIO())
    second.msg('{"event": "two"}')

    lines = [line for path in sorted(tmp_path.iterdir()) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines == ['{"event": "one"}', '{"event": "two"}']


def test_no_file_without_log_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    stream = io.StringIO()

    DailyFileWriter("gateway", None, stream).msg("line")

    assert stream.getvalue() == "line\n"
    assert list(tmp_path.iterdir()) == []


def test_new_file_each_utc_day(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = {"value": datetime.datetime(2030, 1, 1, 23, 59, 59, tzinfo=datetime.UTC)}

    class FixedDateTime:
        @staticmethod
        def now(tz: datetime.tzinfo | None = None) -> datetime.datetime:
            return now["value"]

    monkeypatch.setattr(calln_logging, "datetime", types.SimpleNamespace(datetime=FixedDateTime, UTC=datetime.UTC))
    writer = DailyFileWriter("gateway", str(tmp_path), io.StringIO())

    writer.msg("before midnight")
    now["value"] = datetime.datetime(2030, 1, 2, 0, 0, 1, tzinfo=datetime.UTC)
    writer.msg("after midnight")

    assert (tmp_path / "gateway-2030-01-01.log").read_text(encoding="utf-8") == "before midnight\n"
    assert (tmp_path / "gateway-2030-01-02.log").read_text(encoding="utf-8") == "after midnight\n"


def test_configured_process_logs_filtered_json(tmp_path: Path) -> None:
    # configure_logging changes structlog for the whole process, so run it in a child process.
    script = (
        "import structlog\n"
        "from shared.logging import configure_logging\n"
        "configure_logging('probe', 'info', LOG_DIR)\n"
        "log = structlog.get_logger()\n"
        "log.debug('hidden_below_level')\n"
        f"log.info('chat_relayed', call_id='c1', text='secret chat', sdp='v=0', ip_key={FULL_KEY!r})\n"
    ).replace("LOG_DIR", repr(str(tmp_path)))

    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=False
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "chat_relayed"
    assert record["service"] == "probe"
    assert record["level"] == "info"
    assert record["call_id"] == "c1"
    assert record["ip_key"] == FULL_KEY[:8]
    assert "timestamp" in record
    assert "secret chat" not in result.stdout
    assert "v=0" not in result.stdout
    files = list(tmp_path.iterdir())
    assert len(files) == 1
    assert files[0].name.startswith("probe-")
    assert files[0].read_text(encoding="utf-8") == result.stdout
