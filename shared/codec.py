"""The one msgpack codec for NATS payloads: versioned envelope, strict size and type checks."""

import dataclasses
import types
import typing
from typing import Any, TypeVar

import msgpack

from shared.errors import DecodeError
from shared.events import Event

SCHEMA_VERSION = 1

# Signal payloads from browsers are capped at 64 KiB by the gateway; the envelope and the
# other fields need far less than the second 64 KiB, and NATS' own default cap is 1 MiB.
MAX_PAYLOAD_BYTES = 128 * 1024

E = TypeVar("E", bound=Event)

_HINTS: dict[type, dict[str, Any]] = {}


def encode(event: Event) -> bytes:
    """Serialize an event into the versioned envelope `[version, kind, fields]`."""
    fields = {field.name: getattr(event, field.name) for field in dataclasses.fields(event)}
    packed: bytes = msgpack.packb([SCHEMA_VERSION, event.kind, fields], use_bin_type=True)
    return packed


def decode(payload: bytes, event_type: type[E]) -> E:
    """Parse and type-check a payload as `event_type`; raise DecodeError on any defect."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise DecodeError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")

    envelope = _unpack(payload)
    if not isinstance(envelope, list) or len(envelope) != 3:
        raise DecodeError("payload is not a [version, kind, fields] envelope")

    version, kind, fields = envelope
    # Compare the type too: True and 1.0 are equal to 1 in Python but are not version 1.
    if type(version) is not int or version != SCHEMA_VERSION:
        raise DecodeError(f"unknown schema version {version!r}, expected {SCHEMA_VERSION}")
    if kind != event_type.kind:
        raise DecodeError(f"event kind {kind!r} where {event_type.kind!r} was expected")
    if not isinstance(fields, dict):
        raise DecodeError(f"fields of {kind!r} are not a map")

    return event_type(**_checked_fields(event_type, fields))


def _unpack(payload: bytes) -> object:
    try:
        return msgpack.unpackb(payload, raw=False, strict_map_key=True, use_list=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise DecodeError(f"malformed msgpack: {exc}") from exc


def _checked_fields(event_type: type[Event], fields: dict[object, object]) -> dict[str, object]:
    hints = _hints(event_type)
    unknown = set(fields) - set(hints)
    if unknown:
        raise DecodeError(f"unknown fields {sorted(map(str, unknown))} in {event_type.kind!r}")

    checked: dict[str, object] = {}
    for field in dataclasses.fields(event_type):
        if field.name not in fields:
            if field.default is dataclasses.MISSING:
                raise DecodeError(f"missing field {field.name!r} in {event_type.kind!r}")
            continue
        checked[field.name] = _checked_value(field.name, fields[field.name], hints[field.name])
    return checked


def _hints(event_type: type[Event]) -> dict[str, Any]:
    if event_type not in _HINTS:
        hints = typing.get_type_hints(event_type)
        names = {field.name for field in dataclasses.fields(event_type)}
        _HINTS[event_type] = {name: hint for name, hint in hints.items() if name in names}
    return _HINTS[event_type]


def _checked_value(name: str, value: object, hint: Any) -> object:
    if hint is object:
        return value
    if hint == tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise DecodeError(f"field {name!r} must be a list of strings, got {value!r:.80}")
        return tuple(value)
    if isinstance(hint, types.UnionType):
        if value is None and type(None) in hint.__args__:
            return None
        hint = next(arg for arg in hint.__args__ if arg is not type(None))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    # bool is a subclass of int, so an int field must reject True and False explicitly.
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise DecodeError(f"field {name!r} must be {hint.__name__}, got {type(value).__name__}")
    return value
