"""The msgpack codec: every event round-trips, and every kind of defect raises DecodeError."""

import contextlib
import dataclasses
import typing
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import events
from shared.codec import MAX_PAYLOAD_BYTES, SCHEMA_VERSION, decode, encode
from shared.errors import DecodeError

# Read the classes from the module, not from Event.__subclasses__(). slots=True replaces each class,
# and the replaced class stays registered as a subclass until the garbage collector frees it.
EVENT_TYPES = sorted(
    (
        value
        for value in vars(events).values()
        if isinstance(value, type) and issubclass(value, events.Event) and value is not events.Event
    ),
    key=lambda event_type: event_type.kind,
)

# Integers that msgpack can carry, from the int64 minimum to the uint64 maximum.
MSGPACK_INTS = st.integers(min_value=-(2**63), max_value=2**64 - 1)

# Any msgpack value that decodes to an equal Python value, so lists instead of tuples,
# string map keys (strict_map_key) and no NaN, because NaN != NaN.
MSGPACK_VALUES = st.recursive(
    st.none() | st.booleans() | MSGPACK_INTS | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def strategy_for(hint: Any) -> st.SearchStrategy[Any]:
    """Build values for one field type that shared.events allows."""
    if hint is object:
        return MSGPACK_VALUES
    if hint == tuple[str, ...]:
        return st.lists(st.text(), max_size=4).map(tuple)
    if hint == str | None:
        return st.none() | st.text()
    if hint is bool:
        return st.booleans()
    if hint is int:
        return MSGPACK_INTS
    if hint is float:
        return st.floats(allow_nan=False)
    if hint is str:
        return st.text()
    raise AssertionError(f"no strategy for field type {hint!r}; add one to this test")


def events_of(event_type: type[events.Event]) -> st.SearchStrategy[events.Event]:
    hints = typing.get_type_hints(event_type)
    fields = {field.name: strategy_for(hints[field.name]) for field in dataclasses.fields(event_type)}
    return st.builds(event_type, **fields)


ANY_EVENT = st.sampled_from(EVENT_TYPES).flatmap(events_of)


def sample(event_type: type[events.Event]) -> events.Event:
    """Build a valid event with placeholder values, one per field type."""
    placeholders: dict[Any, object] = {
        str: "x",
        int: 7,
        bool: True,
        float: 1.5,
        object: {"k": [1, "v"]},
        tuple[str, ...]: ("a", "b"),
        str | None: None,
    }
    hints = typing.get_type_hints(event_type)
    return event_type(**{field.name: placeholders[hints[field.name]] for field in dataclasses.fields(event_type)})


def envelope(fields: object, version: object = SCHEMA_VERSION, kind: object = events.MatchJoin.kind) -> bytes:
    packed: bytes = msgpack.packb([version, kind, fields], use_bin_type=True)
    return packed


def join_fields(**changes: object) -> dict[str, object]:
    """Fields of a valid MatchJoin, as the wire map, with some fields replaced."""
    fields: dict[str, object] = {
        "session_id": "s1",
        "gateway_id": "gw1",
        "boot_id": "boot1",
        "browser_id": "browser-0000000001",
        "country": "GB",
        "wanted": "any",
        "ip_key": "ab" * 32,
        "waiting_since_us": 1_700_000_000_000,
        "widen": False,
        "recent_sessions": ["s0"],
        "recent_browsers": [],
        "blocked_keys": [],
    }
    fields.update(changes)
    return fields


def test_every_event_type_is_covered() -> None:
    assert len(EVENT_TYPES) >= 11
    assert len({event_type.kind for event_type in EVENT_TYPES}) == len(EVENT_TYPES)


@given(ANY_EVENT)
def test_round_trip_any_event(event: events.Event) -> None:
    assert decode(encode(event), type(event)) == event


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda event_type: event_type.kind)
def test_round_trip_each_event_type(event_type: type[events.Event]) -> None:
    event = sample(event_type)

    assert decode(encode(event), event_type) == event


def test_envelope_layout() -> None:
    event = events.MatchLeave(session_id="s1", gateway_id="gw1")

    unpacked = msgpack.unpackb(encode(event))

    assert unpacked == [SCHEMA_VERSION, "match.leave", {"session_id": "s1", "gateway_id": "gw1"}]


def test_missing_optional_field_takes_default() -> None:
    fields = join_fields()
    del fields["widen"]
    del fields["blocked_keys"]

    event = decode(envelope(fields), events.MatchJoin)

    assert event.widen is False
    assert event.blocked_keys == ()


def test_tuple_field_decodes_to_tuple() -> None:
    event = decode(envelope(join_fields(recent_sessions=["a", "b"])), events.MatchJoin)

    assert event.recent_sessions == ("a", "b")


def test_payload_at_size_limit_decodes() -> None:
    # Strings of 64 KiB and more share one header size (str 32), so the overhead is constant.
    filler = 70_000
    overhead = len(encode(events.Relay("c", "s", "chat", "x" * filler))) - filler
    event = events.Relay("c", "s", "chat", "x" * (MAX_PAYLOAD_BYTES - overhead))
    payload = encode(event)

    assert len(payload) == MAX_PAYLOAD_BYTES
    assert decode(payload, events.Relay) == event


def test_oversized_payload_rejected() -> None:
    filler = 70_000
    overhead = len(encode(events.Relay("c", "s", "chat", "x" * filler))) - filler
    payload = encode(events.Relay("c", "s", "chat", "x" * (MAX_PAYLOAD_BYTES - overhead + 1)))

    assert len(payload) == MAX_PAYLOAD_BYTES + 1
    with pytest.raises(DecodeError, match="exceeds"):
        decode(payload, events.Relay)


@pytest.mark.parametrize("version", [0, 2, -1, "1", None, True, 1.0, [1]])
def test_unknown_schema_version_rejected(version: object) -> None:
    with pytest.raises(DecodeError, match="schema version"):
        decode(envelope(join_fields(), version=version), events.MatchJoin)


@pytest.mark.parametrize("kind", ["match.leave", "", "MATCH.JOIN", None, 1])
def test_wrong_kind_rejected(kind: object) -> None:
    with pytest.raises(DecodeError, match="kind"):
        decode(envelope(join_fields(), kind=kind), events.MatchJoin)


def test_other_event_type_rejected() -> None:
    payload = encode(events.MatchLeave(session_id="s1", gateway_id="gw1"))

    with pytest.raises(DecodeError, match="kind"):
        decode(payload, events.MatchJoin)


@pytest.mark.parametrize("fields", [["session_id", "s1"], "fields", 3, None])
def test_non_map_fields_rejected(fields: object) -> None:
    with pytest.raises(DecodeError, match="not a map"):
        decode(envelope(fields), events.MatchJoin)


@pytest.mark.parametrize(
    "value",
    [{"v": 1}, [1, "kind"], [1, "kind", {}, "extra"], [], "text", 1, None],
    ids=["map", "two_items", "four_items", "empty_list", "string", "integer", "nil"],
)
def test_non_envelope_rejected(value: object) -> None:
    with pytest.raises(DecodeError, match="envelope"):
        decode(msgpack.packb(value), events.MatchJoin)


def test_unknown_field_rejected() -> None:
    with pytest.raises(DecodeError, match="unknown fields"):
        decode(envelope(join_fields(partner_ip="192.0.2.1")), events.MatchJoin)


def test_binary_field_name_rejected() -> None:
    fields: dict[object, object] = {name: value for name, value in join_fields().items()}
    fields[b"extra"] = "x"

    with pytest.raises(DecodeError, match="unknown fields"):
        decode(envelope(fields), events.MatchJoin)


@pytest.mark.parametrize("name", ["session_id", "gateway_id", "ip_key", "waiting_since_us"])
def test_missing_field_rejected(name: str) -> None:
    fields = join_fields()
    del fields[name]

    with pytest.raises(DecodeError, match=f"missing field '{name}'"):
        decode(envelope(fields), events.MatchJoin)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("waiting_since_us", True),
        ("waiting_since_us", False),
        ("waiting_since_us", "1700000000000"),
        ("waiting_since_us", 1.5),
        ("waiting_since_us", None),
        ("widen", 1),
        ("widen", 0),
        ("widen", "true"),
        ("widen", None),
        ("session_id", 12),
        ("session_id", b"s1"),
        ("session_id", None),
        ("session_id", ["s1"]),
        ("recent_sessions", [1, 2]),
        ("recent_sessions", ["s1", None]),
        ("recent_sessions", "s1"),
        ("recent_sessions", {"s1": 1}),
        ("recent_sessions", None),
        ("blocked_keys", [b"key"]),
    ],
)
def test_wrong_field_type_rejected(name: str, value: object) -> None:
    with pytest.raises(DecodeError, match=f"field '{name}'"):
        decode(envelope(join_fields(**{name: value})), events.MatchJoin)


def test_heartbeat_int_fields_reject_bool() -> None:
    payload = msgpack.packb(
        [SCHEMA_VERSION, "gateway.heartbeat", {"gateway_id": "gw1", "boot_id": "b", "sessions": True, "waiting": 0}]
    )

    with pytest.raises(DecodeError, match="field 'sessions' must be int"):
        decode(payload, events.GatewayHeartbeat)


def test_relay_data_accepts_any_value() -> None:
    data = {"kind": "offer", "data": {"type": "offer", "sdp": "v=0"}, "n": [1, None, 2.5, b"\x00"]}
    payload = msgpack.packb(
        [SCHEMA_VERSION, "gw.relay", {"call_id": "c", "target_session": "s", "event": "signal", "data": data}],
        use_bin_type=True,
    )

    assert decode(payload, events.Relay).data == data


def test_optional_str_field_accepts_none() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Probe(events.Event):
        kind: typing.ClassVar[str] = "test.probe"
        note: str | None
        ratio: float

    payload = msgpack.packb([SCHEMA_VERSION, "test.probe", {"note": None, "ratio": 2}])
    probe = decode(payload, Probe)

    assert probe.note is None
    assert probe.ratio == 2.0
    assert isinstance(probe.ratio, float)
    with pytest.raises(DecodeError, match="field 'note' must be str"):
        decode(msgpack.packb([SCHEMA_VERSION, "test.probe", {"note": 3, "ratio": 2.0}]), Probe)
    with pytest.raises(DecodeError, match="field 'ratio' must be float"):
        decode(msgpack.packb([SCHEMA_VERSION, "test.probe", {"note": "n", "ratio": True}]), Probe)
    with pytest.raises(DecodeError, match="field 'ratio' must be float"):
        decode(msgpack.packb([SCHEMA_VERSION, "test.probe", {"note": "n", "ratio": None}]), Probe)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xc1",
        b"\x93\x01",
        b"\x93\x01\xabmatch.leave\x82",
        b"\xa5abc",
        b"\x93\x01\xa2\xff\xfe\x80",
        b"\x93\x01\xabmatch.leave\x81\x01\xa1x",
        b"\x93\x01\xabmatch.leave\x81\x91\x01\xa1x",
        b"\xc7\x01\xff\x00",
        b"\x91" * 5_000 + b"\x01",
    ],
    ids=[
        "empty",
        "reserved_byte",
        "truncated_array",
        "truncated_map",
        "truncated_string",
        "invalid_utf8",
        "integer_map_key",
        "list_map_key",
        "invalid_timestamp",
        "nested_too_deep",
    ],
)
def test_malformed_msgpack_rejected(payload: bytes) -> None:
    with pytest.raises(DecodeError, match="malformed msgpack"):
        decode(payload, events.MatchLeave)


def test_trailing_garbage_rejected() -> None:
    payload = encode(events.MatchLeave(session_id="s1", gateway_id="gw1"))

    with pytest.raises(DecodeError, match="malformed msgpack"):
        decode(payload + b"\x00", events.MatchLeave)


def test_second_message_appended_rejected() -> None:
    payload = encode(events.MatchLeave(session_id="s1", gateway_id="gw1"))

    with pytest.raises(DecodeError):
        decode(payload + payload, events.MatchLeave)


@given(st.binary(max_size=256), st.sampled_from(EVENT_TYPES))
def test_random_bytes_raise_only_decode_error(payload: bytes, event_type: type[events.Event]) -> None:
    with contextlib.suppress(DecodeError):
        decode(payload, event_type)


@given(st.binary(max_size=64), st.sampled_from(EVENT_TYPES))
def test_random_suffix_raises_only_decode_error(suffix: bytes, event_type: type[events.Event]) -> None:
    prefix = encode(sample(event_type))[:4]

    with contextlib.suppress(DecodeError):
        decode(prefix + suffix, event_type)


@given(st.dictionaries(st.text(max_size=20), MSGPACK_VALUES, max_size=6), st.sampled_from(EVENT_TYPES))
def test_random_fields_raise_only_decode_error(fields: dict[str, object], event_type: type[events.Event]) -> None:
    payload = msgpack.packb([SCHEMA_VERSION, event_type.kind, fields], use_bin_type=True)

    try:
        event = decode(payload, event_type)
    except DecodeError:
        return
    assert isinstance(event, event_type)


@given(ANY_EVENT)
def test_decoded_event_is_frozen(event: events.Event) -> None:
    decoded = decode(encode(event), type(event))
    first_field = dataclasses.fields(decoded)[0].name

    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(decoded, first_field, None)
