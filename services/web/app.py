"""The web service: the single-page app, its config, the policy pages, analytics and ops routes."""

import asyncio
from pathlib import Path

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CollectorRegistry

from services.web.analytics import EventCounter, events_handler, json_error
from services.web.headers import install_security_headers
from services.web.page_config import config_handler
from services.web.pages import add_page_routes
from services.web.settings import WebSettings
from shared.ops import add_ops_routes, start_site

log = structlog.get_logger("web")

STATIC_DIR = Path(__file__).parent / "static"
VENDOR_DIR = STATIC_DIR / "vendor"

# Files the page cannot work without; `make run` copies them from node_modules.
REQUIRED_VENDOR_FILES = ("socket.io.min.js", "outfit.css", "countries.json", "flags/xx.svg")

SETTINGS_KEY = web.AppKey("settings", WebSettings)
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)


def missing_vendor_files(vendor_dir: Path = VENDOR_DIR) -> list[str]:
    return [name for name in REQUIRED_VENDOR_FILES if not (vendor_dir / name).is_file()]


def create_app(settings: WebSettings) -> web.Application:
    """Build the application. Its only state is its metrics and the gateway rotation."""
    registry = CollectorRegistry()
    app = web.Application(middlewares=[api_errors_as_json, static_cache_policy(settings)])
    app[SETTINGS_KEY] = settings
    app[REGISTRY_KEY] = registry

    install_security_headers(app, settings)
    app.router.add_get("/", index)
    app.router.add_get("/config.json", config_handler(settings))
    app.router.add_post("/api/events", events_handler(EventCounter(registry), settings.events_max_body_bytes))
    add_page_routes(app, settings.policy)
    add_ops_routes(app, registry, lambda: not missing_vendor_files())
    app.router.add_static("/static/", STATIC_DIR, follow_symlinks=False, append_version=False)
    return app


async def index(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@web.middleware
async def api_errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Return errors under /api/ (unknown path, wrong method) in the same JSON shape as the handlers."""
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)


def static_cache_policy(settings: WebSettings) -> Middleware:
    """Make browsers revalidate static files (ETag) unless WEB_STATIC_NO_CACHE is off."""

    @web.middleware
    async def cache_policy(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if request.path.startswith("/static/") and "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = "no-cache" if settings.static_no_cache else "public, max-age=3600"
        return response

    return cache_policy


async def run_web(settings: WebSettings, stop: asyncio.Event) -> None:
    """Serve until `stop` is set, then close the listener and open connections."""
    missing = missing_vendor_files()
    if missing:
        log.warning("vendor_files_missing", files=missing, hint="run `npm ci && python scripts/copy_assets.py`")
    runner, port = await start_site(create_app(settings), settings.host, settings.port)
    log.info("web_started", host=settings.host, port=port, gateways=list(settings.gateway_urls))
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        log.info("web_stopped")
