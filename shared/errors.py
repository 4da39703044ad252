"""Errors raised by the shared package.

CallnError
 ├── ConfigError   a setting is missing or invalid; the service must not start
 └── DecodeError   a NATS payload is oversized, of an unknown version or of the wrong shape
"""


class CallnError(Exception):
    """Base of every error raised by shared code."""


class ConfigError(CallnError):
    """A setting from the environment is missing or invalid."""


class DecodeError(CallnError):
    """A NATS payload could not be decoded into the expected event."""
