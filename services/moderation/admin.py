"""The internal admin API: look up, create and erase a ban by address, and aggregate stats.

Every request needs `Authorization: Bearer <ADMIN_TOKEN>`. The address in the path is turned
into ip_keys at once and is never logged, stored or echoed back.
"""

import hmac
import json
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus

import structlog
from aiohttp import web

from services.moderation.keeper import BanKeeper, Lookup
from services.moderation.metrics import ModerationMetrics
from shared.bans import REPORT_REASONS, BanRecord, BanTooLongError
from shared.ipkey import ip_key, short_key
from shared.policy import MAX_BAN_DAYS, SECONDS_PER_DAY

# A PUT body is `{"days": n, "reason": "..."}`; nothing legitimate comes near this size.
MAX_BODY_BYTES = 4096

log = structlog.get_logger("admin")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: HTTPStatus, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


class AdminApi:
    """The aiohttp application behind the admin port."""

    def __init__(
        self,
        token: str,
        secrets: tuple[bytes, ...],
        keeper: BanKeeper,
        metrics: ModerationMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._token = token.encode()
        self._secrets = secrets
        self._keeper = keeper
        self._metrics = metrics
        self._clock = clock

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._errors_as_json, self._require_token], client_max_size=MAX_BODY_BYTES)
        app.router.add_get("/admin/bans/{ip}", self.lookup)
        app.router.add_put("/admin/bans/{ip}", self.ban)
        app.router.add_delete("/admin/bans/{ip}", self.erase)
        app.router.add_get("/admin/stats", self.stats)
        return app

    @web.middleware
    async def _errors_as_json(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.content_type == "application/json":
                raise
            # aiohttp's own errors (unknown route, wrong method, body too large) become JSON too.
            return error_response(HTTPStatus(exc.status), exc.reason.lower().replace(" ", "_"), exc.reason)

    @web.middleware
    async def _require_token(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            log.warning("admin_unauthorized", reason="missing_token", path_kind=_path_kind(request))
            return _unauthorized("missing bearer token; send `Authorization: Bearer <ADMIN_TOKEN>`")
        if not hmac.compare_digest(presented.strip().encode(), self._token):
            log.warning("admin_unauthorized", reason="wrong_token", path_kind=_path_kind(request))
            return _unauthorized("invalid bearer token")
        return await handler(request)

    def _keys(self, request: web.Request) -> tuple[str, ...] | web.Response:
        address = request.match_info["ip"]
        try:
            return tuple(ip_key(secret, address) for secret in self._secrets)
        except ValueError:
            return error_response(
                HTTPStatus.BAD_REQUEST, "invalid_address", "the path does not end in an IPv4 or IPv6 address"
            )

    async def lookup(self, request: web.Request) -> web.Response:
        keys = self._keys(request)
        if isinstance(keys, web.Response):
            return keys
        summary = await self._keeper.lookup(keys)
        log.info("admin_lookup", ip_key=short_key(keys[0]), banned=summary.ban is not None)
        return web.json_response(_lookup_json(summary))

    async def ban(self, request: web.Request) -> web.Response:
        keys = self._keys(request)
        if isinstance(keys, web.Response):
            return keys
        parsed = await _ban_request(request)
        if isinstance(parsed, web.Response):
            return parsed

        days, reason = parsed
        now_s = self._clock()
        try:
            record = BanRecord(until=now_s + days * SECONDS_PER_DAY, reason=reason, created_at=now_s)
            stored = await self._keeper.impose(keys[0], record, replace=True)
        except BanTooLongError as exc:
            return error_response(HTTPStatus.BAD_REQUEST, "ban_too_long", str(exc))
        self._metrics.bans_created.labels(source="admin").inc()
        log.info("admin_ban", ip_key=short_key(keys[0]), until=stored.until, reason=stored.reason)
        return web.json_response({"banned": True, "ban": _ban_json(stored)})

    async def erase(self, request: web.Request) -> web.Response:
        keys = self._keys(request)
        if isinstance(keys, web.Response):
            return keys
        removed = await self._keeper.erase(keys)
        self._metrics.bans_erased.inc()
        log.info("admin_erase", ip_key=short_key(keys[0]), records=removed)
        return web.json_response({"erased": True, "records": removed})

    async def stats(self, _request: web.Request) -> web.Response:
        now_s = self._clock()
        stored = await self._keeper.stores.bans.items()
        active = sum(1 for ban in stored.values() if ban.record.until > now_s)
        return web.json_response({"active_bans": active, **self._metrics.totals()})


async def _ban_request(request: web.Request) -> tuple[float, str] | web.Response:
    """Parse `{"days": n, "reason": "..."}`; days in (0, 30], reason from the fixed list."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return error_response(
            HTTPStatus.BAD_REQUEST, "invalid_body", 'the body must be JSON like {"days": 7, "reason": "spam"}'
        )
    if not isinstance(body, dict):
        return error_response(HTTPStatus.BAD_REQUEST, "invalid_body", 'the body must be a JSON object like {"days": 7}')

    days = body.get("days")
    # `not days > 0` also rejects NaN, which Python's json module accepts.
    if isinstance(days, bool) or not isinstance(days, int | float) or not days > 0:
        message = f"days must be a positive number, got {days!r:.40}"
        return error_response(HTTPStatus.BAD_REQUEST, "invalid_days", message)
    if days > MAX_BAN_DAYS:
        return error_response(
            HTTPStatus.BAD_REQUEST, "ban_too_long", f"days={days} exceeds the maximum ban of {MAX_BAN_DAYS} days"
        )

    reason = body.get("reason", "other")
    if reason not in REPORT_REASONS:
        return error_response(
            HTTPStatus.BAD_REQUEST, "invalid_reason", f"reason {reason!r:.40} is not one of {', '.join(REPORT_REASONS)}"
        )
    return float(days), str(reason)


def _unauthorized(message: str) -> web.Response:
    response = error_response(HTTPStatus.UNAUTHORIZED, "unauthorized", message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="calln-admin"'
    return response


def _path_kind(request: web.Request) -> str:
    # The path may carry an address, so logs name only which endpoint was called.
    if request.path.startswith("/admin/bans/"):
        return "bans"
    return "stats" if request.path == "/admin/stats" else "other"


def _ban_json(record: BanRecord) -> dict[str, object]:
    return {"until": record.until, "reason": record.reason, "created_at": record.created_at}


def _lookup_json(summary: Lookup) -> dict[str, object]:
    return {
        "banned": summary.ban is not None,
        "ban": _ban_json(summary.ban) if summary.ban is not None else None,
        "bans_recorded": summary.bans_recorded,
        "reports_in_window": summary.reports_in_window,
        "blocks": summary.blocks,
    }

