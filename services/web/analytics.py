"""First-party analytics: `POST /api/events` counts whitelisted event names and stores nothing else.

The page sends events only after the person pressed Accept. A body is exactly `{"name": "<event>"}`;
any other field is rejected, so no identifier can be sent, and nothing about the request is logged.
"""

import json

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter

EVENT_NAMES = ("page_view", "call_start", "call_match", "game_play")

JSON_CONTENT_TYPE = "application/json"


class EventError(Exception):
    """An analytics request was rejected; `status` and the message go back as a JSON error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class EventCounter:
    """The Prometheus counter of accepted analytics events and of rejected requests."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted = Counter(
            "calln_web_events_total", "Analytics events accepted after consent, by name", ["name"], registry=registry
        )
        self.rejected = Counter(
            "calln_web_events_rejected_total", "Analytics requests rejected, by error code", ["code"], registry=registry
        )
        for name in EVENT_NAMES:
            self.accepted.labels(name=name)


def parse_event(body: bytes) -> str:
    """Return the event name of a request body, or raise EventError saying what is wrong."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventError(400, "invalid_json", f"body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise EventError(400, "invalid_payload", 'body must be a JSON object like {"name": "page_view"}')

    extra = sorted(set(payload) - {"name"})
    if extra:
        raise EventError(400, "unexpected_field", f"only \"name\" is accepted; remove {extra!r:.80}")
    name = payload.get("name")
    if name not in EVENT_NAMES:
        raise EventError(400, "unknown_event", f"name {name!r:.40} is not one of {list(EVENT_NAMES)}")
    return str(name)


async def read_limited(request: web.Request, max_bytes: int) -> bytes:
    """Read the body, rejecting it as soon as it grows past `max_bytes` (chunked bodies included)."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise EventError(413, "too_large", f"body of {request.content_length} bytes exceeds {max_bytes} bytes")
    body = await request.content.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise EventError(413, "too_large", f"body exceeds {max_bytes} bytes")
    return body


def events_handler(counter: EventCounter, max_body_bytes: int) -> Handler:
    """Build the `POST /api/events` handler: 204 on success, a JSON error with a code otherwise."""

    async def post_event(request: web.Request) -> web.StreamResponse:
        try:
            if request.content_type != JSON_CONTENT_TYPE:
                raise EventError(415, "unsupported_media_type", f"send the body as {JSON_CONTENT_TYPE}")
            name = parse_event(await read_limited(request, max_body_bytes))
        except EventError as exc:
            counter.rejected.labels(code=exc.code).inc()
            return json_error(exc.status, exc.code, exc.message)

        counter.accepted.labels(name=name).inc()
        return web.Response(status=204, headers={"Cache-Control": "no-store"})

    return post_event


def json_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)
