"""The one msgpack codec for NATS payloads: versioned envelope, strict size and type checks."""

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import msgpack

from shared.errors import DecodeError
from shared.events import Event

SCHEMA_VERSION = 1

# The gateway caps signal payloads from browsers at 64 KiB. The envelope and the other fields
# need far less than a second 64 KiB, and NATS' own default cap is 1 MiB.
MAX_PAYLOAD_BYTES = 128 * 1024

E = TypeVar("E", bound=Event)

Checker = Callable[[str, object], object]


@dataclass(frozen=True, slots=True)
class _Schema:
    """Field names and checks of one event type, worked out once per type."""

    names: tuple[str, ...]
    known: frozenset[str]
    # (field name, required, checker) in declaration order.
    fields: tuple[tuple[str, bool, Checker], ...]


_SCHEMAS: dict[type, _Schema] = {}


def encode(event: Event) -> bytes:
    """Serialize an event into the versioned envelope `[version, kind, fields]`."""
    names = _schema(type(event)).names
    fields = {name: getattr(event, name) for name in names}
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
    schema = _schema(event_type)
    if not schema.known.issuperset(fields):
        unknown = set(fields) - schema.known
        raise DecodeError(f"unknown fields {sorted(map(str, unknown))} in {event_type.kind!r}")

    checked: dict[str, object] = {}
    for name, required, check in schema.fields:
        if name not in fields:
            if required:
                raise DecodeError(f"missing field {name!r} in {event_type.kind!r}")
            continue
        checked[name] = check(name, fields[name])
    return checked


def _schema(event_type: type) -> _Schema:
    schema = _SCHEMAS.get(event_type)
    if schema is None:
        hints = typing.get_type_hints(event_type)
        fields = tuple(
            (field.name, field.default is dataclasses.MISSING, _checker(hints[field.name]))
            for field in dataclasses.fields(event_type)
        )
        names = tuple(name for name, _required, _check in fields)
        schema = _SCHEMAS[event_type] = _Schema(names, frozenset(names), fields)
    return schema


def _checker(hint: Any) -> Checker:
    """Build the check for one field type: object, tuple[str, ...], X | None, float or a plain type."""
    if hint is object:
        return lambda _name, value: value
    if hint == tuple[str, ...]:
        return _check_strings
    if isinstance(hint, types.UnionType):
        inner = _checker(next(arg for arg in hint.__args__ if arg is not type(None)))
        return lambda name, value: None if value is None else inner(name, value)
    if hint is float:
        return _check_float
    return partial(_check_type, hint)


def _check_strings(name: str, value: object) -> object:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DecodeError(f"field {name!r} must be a list of strings, got {value!r:.80}")
    return tuple(value)


def _check_float(name: str, value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return _check_type(float, name, value)


def _check_type(hint: type, name: str, value: object) -> object:
    # bool is a subclass of int, so an int field must reject True and False explicitly.
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise DecodeError(f"field {name!r} must be {hint.__name__}, got {type(value).__name__}")
    return value
