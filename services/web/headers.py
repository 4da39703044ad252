"""Security headers on every response: a Content-Security-Policy that names only our own origins."""

from urllib.parse import urlsplit

from aiohttp import web

from services.web.settings import WebSettings

# Only the microphone is used, and only by our own page.
PERMISSIONS_POLICY = "microphone=(self), camera=(), geolocation=(), payment=(), usb=(), display-capture=()"

# WebSocket origins a browser dials for each page-side scheme of a gateway URL.
_WEBSOCKET_SCHEMES = {"http": "ws", "https": "wss"}


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def websocket_origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{_WEBSOCKET_SCHEMES[parts.scheme]}://{parts.netloc}"


def content_security_policy(settings: WebSettings) -> str:
    """Build the CSP: our own origin, the gateways (HTTP and WebSocket forms) and configured third parties."""
    gateways = [origin for url in settings.gateway_urls for origin in (origin_of(url), websocket_origin(url))]
    analytics = [origin_of(settings.policy.analytics_url)] if settings.policy.analytics_url else []
    ads = [origin_of(settings.policy.ads_url)] if settings.policy.ads_url else []

    directives = {
        "default-src": ["'none'"],
        "script-src": ["'self'", *analytics],
        "style-src": ["'self'"],
        "img-src": ["'self'", *analytics, *ads],
        "font-src": ["'self'"],
        "media-src": ["'self'"],
        "connect-src": ["'self'", *_unique(gateways), *analytics],
        "frame-src": ads or ["'none'"],
        "manifest-src": ["'self'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "object-src": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def security_headers(settings: WebSettings) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(settings),
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": PERMISSIONS_POLICY,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
    }


def install_security_headers(app: web.Application, settings: WebSettings) -> None:
    """Add the headers to every response, including static files and error pages."""
    headers = security_headers(settings)

    async def add_headers(_request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(headers)

    app.on_response_prepare.append(add_headers)
