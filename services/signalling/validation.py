"""Validation of browser event payloads into typed requests; bad input raises ClientError."""

import json
import re
from dataclasses import dataclass

from shared import bans
from shared.events import ANY_COUNTRY

SIGNAL_KINDS = frozenset({"offer", "answer", "candidate", "need_offer"})
REPORT_REASONS = frozenset(bans.REPORT_REASONS)

_CALL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_BROWSER_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


class ClientError(Exception):
    """A browser event was rejected; `code` and the message go back in an `error` event."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class JoinRequest:
    wanted: str
    widen: bool


@dataclass(frozen=True, slots=True)
class SignalRequest:
    call_id: str
    kind: str
    data: object


@dataclass(frozen=True, slots=True)
class ChatRequest:
    call_id: str
    text: str


@dataclass(frozen=True, slots=True)
class CallRequest:
    """An event that names only the sender's call, like `typing`."""

    call_id: str


@dataclass(frozen=True, slots=True)
class ReportRequest:
    call_id: str
    reason: str


def parse_join(data: object) -> JoinRequest:
    payload = _mapping(data, "join")
    country = payload.get("country", ANY_COUNTRY)
    if not isinstance(country, str):
        raise ClientError("invalid_payload", "join.country must be a string")
    wanted = country if country == ANY_COUNTRY else country.upper()
    if wanted != ANY_COUNTRY and (not _COUNTRY.fullmatch(wanted) or wanted == "XX"):
        raise ClientError("invalid_country", f"join.country {country!r:.20} is not 'any' or an ISO 3166 alpha-2 code")
    widen = payload.get("widen", False)
    if not isinstance(widen, bool):
        raise ClientError("invalid_payload", "join.widen must be true or false")
    return JoinRequest(wanted, widen)


def parse_signal(data: object, max_bytes: int) -> SignalRequest:
    payload = _mapping(data, "signal")
    call_id = _call_id(payload, "signal")
    kind = payload.get("kind")
    if not isinstance(kind, str) or kind not in SIGNAL_KINDS:
        raise ClientError("invalid_payload", f"signal.kind must be one of {sorted(SIGNAL_KINDS)}")
    body = payload.get("data")
    size = len(json.dumps(body, separators=(",", ":")))
    if size > max_bytes:
        raise ClientError("too_large", f"signal data of {size} bytes exceeds the limit of {max_bytes} bytes")
    _check_signal_data(str(kind), body)
    return SignalRequest(call_id, str(kind), body)


def parse_chat(data: object, max_chars: int) -> ChatRequest:
    payload = _mapping(data, "chat")
    call_id = _call_id(payload, "chat")
    text = payload.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ClientError("invalid_payload", "chat.text must be a non-empty string")
    if len(text) > max_chars:
        raise ClientError("too_large", f"chat.text has {len(text)} characters; the limit is {max_chars}")
    return ChatRequest(call_id, text)


def parse_call(data: object, event: str) -> CallRequest:
    return CallRequest(_call_id(_mapping(data, event), event))


def parse_report(data: object) -> ReportRequest:
    payload = _mapping(data, "report")
    call_id = _call_id(payload, "report")
    reason = payload.get("reason")
    if not isinstance(reason, str) or reason not in REPORT_REASONS:
        raise ClientError("invalid_reason", f"report.reason must be one of {sorted(REPORT_REASONS)}")
    return ReportRequest(call_id, str(reason))


def parse_browser_id(auth: object) -> str | None:
    """Return the browser id from the Socket.IO auth payload, or None when absent or malformed."""
    if not isinstance(auth, dict):
        return None
    browser_id = auth.get("browser_id")
    if isinstance(browser_id, str) and _BROWSER_ID.fullmatch(browser_id):
        return browser_id
    return None


def _mapping(data: object, event: str) -> dict[str, object]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ClientError("invalid_payload", f"{event} payload must be an object, got {type(data).__name__}")
    return data


def _call_id(payload: dict[str, object], event: str) -> str:
    call_id = payload.get("call_id")
    if not isinstance(call_id, str) or not _CALL_ID.fullmatch(call_id):
        raise ClientError("invalid_payload", f"{event}.call_id must be a call id string")
    return call_id


def _check_signal_data(kind: str, body: object) -> None:
    if kind in ("offer", "answer"):
        if not isinstance(body, dict) or not isinstance(body.get("sdp"), str) or body.get("type") != kind:
            raise ClientError("invalid_payload", f"signal data of a {kind} must be {{type: {kind!r}, sdp: string}}")
    elif kind == "candidate" and not _is_candidate_or_null(body):
        raise ClientError("invalid_payload", "signal data of a candidate must be an RTCIceCandidateInit or null")


def _is_candidate_or_null(body: object) -> bool:
    return body is None or (isinstance(body, dict) and isinstance(body.get("candidate", ""), str))
