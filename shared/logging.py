"""structlog JSON logging, configured once per process, with privacy filters.

Lines go to stdout and, when a log directory is set, to one file per service and UTC day,
which the moderation service deletes after the retention period.
"""

import datetime
import logging
import os
import sys
import threading
from typing import TextIO

import structlog
from structlog.typing import EventDict

# Field names whose values must never reach a log line: chat text, SDP and raw addresses.
# The filter is a backstop; call sites already leave these out.
DROPPED_FIELDS = frozenset({"text", "sdp", "data", "ip", "address", "remote", "forwarded_for", "candidate"})

# Fields holding ip_keys are cut to this many hex characters.
KEY_PREFIX_CHARS = 8

_configured = False


class DailyFileWriter:
    """Writes each line to stdout and to `<log_dir>/<service>-<UTC date>.log`."""

    def __init__(self, service: str, log_dir: str | None, stream: TextIO = sys.stdout) -> None:
        self._service = service
        self._log_dir = log_dir
        self._stream = stream
        self._lock = threading.Lock()
        self._day = ""
        self._file: TextIO | None = None

    def msg(self, message: str) -> None:
        with self._lock:
            self._stream.write(message + "\n")
            self._stream.flush()
            if self._log_dir:
                self._file_for_today().write(message + "\n")
                self._file_for_today().flush()

    def _file_for_today(self) -> TextIO:
        day = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
        if self._file is None or day != self._day:
            if self._file is not None:
                self._file.close()
            assert self._log_dir is not None
            os.makedirs(self._log_dir, exist_ok=True)
            path = os.path.join(self._log_dir, f"{self._service}-{day}.log")
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open across lines
            self._day = day
        return self._file

    log = debug = info = warning = error = critical = exception = msg


def drop_private_fields(_logger: object, _method: str, event_dict: EventDict) -> EventDict:
    """Remove fields that may carry chat text, SDP or addresses, and shorten ip_keys."""
    for name in DROPPED_FIELDS & event_dict.keys():
        event_dict[name] = "[dropped]"
    for name, value in event_dict.items():
        if name.endswith("_key") and isinstance(value, str):
            event_dict[name] = value[:KEY_PREFIX_CHARS]
    return event_dict


def configure_logging(service: str, level: str = "info", log_dir: str | None = None) -> None:
    """Configure structlog for this process; later calls change nothing."""
    global _configured
    if _configured:
        return

    numeric_level = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    writer = DailyFileWriter(service, log_dir)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            drop_private_fields,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=lambda *_args: writer,
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    _configured = True
