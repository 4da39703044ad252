"""Browser event payload parsers and their error codes."""

import json
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.signalling.validation import (
    REPORT_REASONS,
    SIGNAL_KINDS,
    CallRequest,
    ChatRequest,
    ClientError,
    JoinRequest,
    ReportRequest,
    SignalRequest,
    parse_browser_id,
    parse_call,
    parse_chat,
    parse_join,
    parse_report,
    parse_signal,
)

CALL_ID = "call_0123-abc"
SIGNAL_MAX_BYTES = 64 * 1024
CHAT_MAX_CHARS = 1000

# Values a JSON decoder can produce that are not objects, and values that are not strings.
NON_OBJECTS = ["join", 1, 1.5, True, ["country", "GB"]]
NON_STRINGS = [None, 1, 1.5, True, ["x"], {"x": 1}]

# Any JSON value, as Socket.IO hands a payload to the gateway.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10,
)


def error_of(parse: Callable[..., object], *args: object) -> ClientError:
    with pytest.raises(ClientError) as raised:
        parse(*args)
    assert raised.value.message
    return raised.value


def signal_json_size(data: object) -> int:
    """The size that parse_signal measures: compact JSON with non-ASCII escaped."""
    return len(json.dumps(data, separators=(",", ":")))


# -- join ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (None, JoinRequest("any", False)),
        ({}, JoinRequest("any", False)),
        ({"country": "any"}, JoinRequest("any", False)),
        ({"country": "GB"}, JoinRequest("GB", False)),
        ({"country": "de"}, JoinRequest("DE", False)),
        ({"country": "Fr", "widen": True}, JoinRequest("FR", True)),
        ({"country": "any", "widen": False}, JoinRequest("any", False)),
        ({"country": "US", "extra": 1}, JoinRequest("US", False)),
    ],
)
def test_join_accepted(payload: object, expected: JoinRequest) -> None:
    assert parse_join(payload) == expected


@pytest.mark.parametrize("payload", NON_OBJECTS)
def test_join_non_object_rejected(payload: object) -> None:
    assert error_of(parse_join, payload).code == "invalid_payload"


@pytest.mark.parametrize("country", NON_STRINGS)
def test_join_country_not_string(country: object) -> None:
    assert error_of(parse_join, {"country": country}).code == "invalid_payload"


@pytest.mark.parametrize(
    "country", ["", "G", "GBR", "ANY", "Any", "XX", "xx", "G1", "12", "G B", "GB\n", " GB", "ÄB", "any\n"]
)
def test_join_country_invalid(country: str) -> None:
    assert error_of(parse_join, {"country": country}).code == "invalid_country"


@pytest.mark.parametrize("widen", [None, 1, 0, "true", [True]])
def test_join_widen_not_bool(widen: object) -> None:
    assert error_of(parse_join, {"country": "GB", "widen": widen}).code == "invalid_payload"


# -- signal ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("offer", {"type": "offer", "sdp": "v=0\r\n"}),
        ("answer", {"type": "answer", "sdp": "v=0\r\n"}),
        ("offer", {"type": "offer", "sdp": ""}),
        ("candidate", {"candidate": "candidate:1 1 udp 2122260223 192.0.2.4 50000 typ host", "sdpMid": "0",
                       "sdpMLineIndex": 0}),
        ("candidate", {"candidate": ""}),
        ("candidate", {"sdpMid": "0"}),
        ("candidate", None),
        ("need_offer", None),
        ("need_offer", {}),
    ],
    ids=["offer", "answer", "empty_sdp", "candidate", "end_of_candidates", "candidate_without_text",
         "candidate_null", "need_offer", "need_offer_object"],
)
def test_signal_accepted(kind: str, data: object) -> None:
    request = parse_signal({"call_id": CALL_ID, "kind": kind, "data": data}, SIGNAL_MAX_BYTES)

    assert request == SignalRequest(CALL_ID, kind, data)


def test_signal_candidate_data_missing_counts_as_null() -> None:
    request = parse_signal({"call_id": CALL_ID, "kind": "candidate"}, SIGNAL_MAX_BYTES)

    assert request.data is None


@pytest.mark.parametrize("payload", [None, *NON_OBJECTS])
def test_signal_non_object_rejected(payload: object) -> None:
    assert error_of(parse_signal, payload, SIGNAL_MAX_BYTES).code == "invalid_payload"


@pytest.mark.parametrize("call_id", [*NON_STRINGS, "", "a" * 65, "call id", "call/1", "call\n", "ca\u00efl"])
def test_signal_call_id_invalid(call_id: object) -> None:
    payload = {"call_id": call_id, "kind": "need_offer", "data": None}

    assert error_of(parse_signal, payload, SIGNAL_MAX_BYTES).code == "invalid_payload"


def test_signal_call_id_at_64_chars_accepted() -> None:
    call_id = "c" * 64

    assert parse_signal({"call_id": call_id, "kind": "need_offer"}, SIGNAL_MAX_BYTES).call_id == call_id


@pytest.mark.parametrize("kind", [None, "", "OFFER", "bye", 1, ["offer"], {"offer": 1}])
def test_signal_kind_invalid(kind: object) -> None:
    payload = {"call_id": CALL_ID, "kind": kind, "data": None}

    assert error_of(parse_signal, payload, SIGNAL_MAX_BYTES).code == "invalid_payload"


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("offer", None),
        ("offer", "v=0"),
        ("offer", {"sdp": "v=0"}),
        ("offer", {"type": "answer", "sdp": "v=0"}),
        ("offer", {"type": "offer", "sdp": None}),
        ("offer", {"type": "offer", "sdp": ["v=0"]}),
        ("answer", {"type": "offer", "sdp": "v=0"}),
        ("answer", {"type": "answer"}),
        ("candidate", "candidate:1 1 udp 1 192.0.2.4 1 typ host"),
        ("candidate", ["candidate"]),
        ("candidate", {"candidate": None}),
        ("candidate", {"candidate": 5}),
    ],
)
def test_signal_data_invalid(kind: str, data: object) -> None:
    payload = {"call_id": CALL_ID, "kind": kind, "data": data}

    assert error_of(parse_signal, payload, SIGNAL_MAX_BYTES).code == "invalid_payload"


def offer_of_size(size: int) -> dict[str, str]:
    data = {"type": "offer", "sdp": ""}
    data["sdp"] = "s" * (size - signal_json_size(data))
    assert signal_json_size(data) == size
    return data


def test_signal_data_at_size_limit_accepted() -> None:
    data = offer_of_size(SIGNAL_MAX_BYTES)

    assert parse_signal({"call_id": CALL_ID, "kind": "offer", "data": data}, SIGNAL_MAX_BYTES).data == data


def test_signal_data_over_size_limit_too_large() -> None:
    data = offer_of_size(SIGNAL_MAX_BYTES + 1)

    error = error_of(parse_signal, {"call_id": CALL_ID, "kind": "offer", "data": data}, SIGNAL_MAX_BYTES)

    assert error.code == "too_large"
    assert str(SIGNAL_MAX_BYTES) in error.message


def test_signal_size_counts_escaped_non_ascii() -> None:
    # Each "é" is six characters once escaped, so 100 of them measure 600 plus the object around them.
    data = {"type": "offer", "sdp": "é" * 100}
    limit = signal_json_size(data)

    assert parse_signal({"call_id": CALL_ID, "kind": "offer", "data": data}, limit).data == data
    assert error_of(parse_signal, {"call_id": CALL_ID, "kind": "offer", "data": data}, limit - 1).code == "too_large"


def test_signal_size_limit_applies_to_every_kind() -> None:
    data = {"candidate": "c" * 300}
    payload = {"call_id": CALL_ID, "kind": "need_offer", "data": data}

    assert error_of(parse_signal, payload, 256).code == "too_large"


@given(st.just(CALL_ID) | JSON_VALUES, st.sampled_from(sorted(SIGNAL_KINDS)) | JSON_VALUES, JSON_VALUES)
def test_signal_any_json_raises_only_client_error(call_id: object, kind: object, data: object) -> None:
    try:
        request = parse_signal({"call_id": call_id, "kind": kind, "data": data}, 256)
    except ClientError as error:
        assert error.code in {"invalid_payload", "too_large"}
        return
    assert request.kind in SIGNAL_KINDS
    assert signal_json_size(request.data) <= 256


# -- chat ------------------------------------------------------------------------------------


def test_chat_accepted() -> None:
    assert parse_chat({"call_id": CALL_ID, "text": "hi there"}, CHAT_MAX_CHARS) == ChatRequest(CALL_ID, "hi there")


def test_chat_keeps_text_unchanged() -> None:
    text = "  spaced\nlines 👋  "

    assert parse_chat({"call_id": CALL_ID, "text": text}, CHAT_MAX_CHARS).text == text


def test_chat_at_limit_accepted() -> None:
    text = "x" * CHAT_MAX_CHARS

    assert parse_chat({"call_id": CALL_ID, "text": text}, CHAT_MAX_CHARS).text == text


def test_chat_limit_counts_characters_not_bytes() -> None:
    text = "é" * CHAT_MAX_CHARS

    assert parse_chat({"call_id": CALL_ID, "text": text}, CHAT_MAX_CHARS).text == text


def test_chat_one_over_limit_too_large() -> None:
    error = error_of(parse_chat, {"call_id": CALL_ID, "text": "x" * (CHAT_MAX_CHARS + 1)}, CHAT_MAX_CHARS)

    assert error.code == "too_large"
    assert "1001" in error.message


@pytest.mark.parametrize("text", [*NON_STRINGS, "", "   ", "\n\t"])
def test_chat_text_invalid(text: object) -> None:
    assert error_of(parse_chat, {"call_id": CALL_ID, "text": text}, CHAT_MAX_CHARS).code == "invalid_payload"


@pytest.mark.parametrize("payload", [None, *NON_OBJECTS, {"text": "hi"}, {"call_id": 5, "text": "hi"}])
def test_chat_payload_invalid(payload: object) -> None:
    assert error_of(parse_chat, payload, CHAT_MAX_CHARS).code == "invalid_payload"


# -- typing, game and other call events ------------------------------------------------------


def test_call_event_accepted() -> None:
    assert parse_call({"call_id": CALL_ID}, "typing") == CallRequest(CALL_ID)


def test_call_event_ignores_other_fields() -> None:
    assert parse_call({"call_id": CALL_ID, "move": 3}, "game") == CallRequest(CALL_ID)


@pytest.mark.parametrize("payload", [None, *NON_OBJECTS, {}, {"call_id": None}, {"call_id": "bad id"}])
def test_call_event_invalid(payload: object) -> None:
    error = error_of(parse_call, payload, "typing")

    assert error.code == "invalid_payload"
    assert "typing" in error.message


# -- report ----------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", sorted(REPORT_REASONS))
def test_report_accepted(reason: str) -> None:
    assert parse_report({"call_id": CALL_ID, "reason": reason}) == ReportRequest(CALL_ID, reason)


@pytest.mark.parametrize("reason", [None, "", "SPAM", "rude", 1, ["spam"], {"spam": True}])
def test_report_reason_invalid(reason: object) -> None:
    assert error_of(parse_report, {"call_id": CALL_ID, "reason": reason}).code == "invalid_reason"


@pytest.mark.parametrize("payload", [None, *NON_OBJECTS, {"reason": "spam"}, {"call_id": "", "reason": "spam"}])
def test_report_payload_invalid(payload: object) -> None:
    assert error_of(parse_report, payload).code == "invalid_payload"


# -- browser id ------------------------------------------------------------------------------


@pytest.mark.parametrize("browser_id", ["a" * 16, "A" * 64, "abc_DEF-0123456789"])
def test_browser_id_accepted(browser_id: str) -> None:
    assert parse_browser_id({"browser_id": browser_id, "hide_ip": True}) == browser_id


@pytest.mark.parametrize(
    "auth",
    [
        None,
        "a" * 20,
        ["a" * 20],
        {},
        {"browser_id": None},
        {"browser_id": 1234567890123456},
        {"browser_id": "a" * 15},
        {"browser_id": "a" * 65},
        {"browser_id": "a" * 16 + "\n"},
        {"browser_id": "a" * 16 + " "},
        {"browser_id": "a" * 15 + "."},
        {"browser_id": "a" * 15 + "é"},
    ],
)
def test_browser_id_invalid_gives_none(auth: object) -> None:
    assert parse_browser_id(auth) is None
