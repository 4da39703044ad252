"""The web service through aiohttp's test client: headers, /config.json, /api/events and the policy pages."""

import json
import re
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.web.app import create_app
from services.web.settings import WebSettings
from shared.errors import ConfigError

POLICY_VARIABLES = (
    "CONTACT_EMAIL", "ABUSE_EMAIL", "PRIVACY_EMAIL", "ANALYTICS_URL", "ADS_URL", "TURN_URLS", "LOG_RETENTION_DAYS",
    "REPORT_THRESHOLD", "REPORT_WINDOW_HOURS", "REPORT_BLOCK_HOURS", "BAN_STEPS_HOURS", "GATEWAY_URLS", "ICE_SERVERS",
    "CHAT_MAX_CHARS", "EVENTS_MAX_BODY_BYTES",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in POLICY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


async def start_client(monkeypatch: pytest.MonkeyPatch, **env: str) -> TestClient:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client: TestClient = TestClient(TestServer(create_app(WebSettings.from_env())))
    await client.start_server()
    return client


@pytest.fixture
async def client(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestClient]:
    test_client = await start_client(monkeypatch)
    yield test_client
    await test_client.close()


def flatten(html: str) -> str:
    """Collapse the template's line breaks and indentation so tests can match whole sentences."""
    return " ".join(html.split())


def csp_directives(header: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *sources = part.split()
        directives[name] = sources
    return directives


# -- headers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/privacy", "/static/js/main.js", "/config.json", "/missing"])
async def test_security_headers_on_every_response(client: TestClient, path: str) -> None:
    response = await client.get(path)

    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Permissions-Policy"].startswith("microphone=(self)")
    assert "Content-Security-Policy" in response.headers


async def test_csp_names_no_third_party_by_default(client: TestClient) -> None:
    response = await client.get("/")
    directives = csp_directives(response.headers["Content-Security-Policy"])

    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["font-src"] == ["'self'"]
    assert directives["img-src"] == ["'self'"]
    assert directives["frame-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in response.headers["Content-Security-Policy"]


async def test_csp_connect_src_lists_gateways(client: TestClient) -> None:
    response = await client.get("/")
    connect = csp_directives(response.headers["Content-Security-Policy"])["connect-src"]

    assert connect == [
        "'self'", "http://127.0.0.1:8090", "ws://127.0.0.1:8090", "http://127.0.0.1:8091", "ws://127.0.0.1:8091",
    ]


async def test_csp_uses_wss_for_https_gateways(monkeypatch: pytest.MonkeyPatch) -> None:
    client = await start_client(monkeypatch, GATEWAY_URLS="https://gw.calln.example")
    try:
        response = await client.get("/")
        connect = csp_directives(response.headers["Content-Security-Policy"])["connect-src"]
    finally:
        await client.close()

    assert connect == ["'self'", "https://gw.calln.example", "wss://gw.calln.example"]


async def test_csp_adds_configured_third_parties(monkeypatch: pytest.MonkeyPatch) -> None:
    client = await start_client(
        monkeypatch, ANALYTICS_URL="https://stats.example.org/script.js", ADS_URL="https://ads.example.net/slot"
    )
    try:
        response = await client.get("/")
        directives = csp_directives(response.headers["Content-Security-Policy"])
    finally:
        await client.close()

    assert directives["script-src"] == ["'self'", "https://stats.example.org"]
    assert "https://stats.example.org" in directives["connect-src"]
    assert directives["frame-src"] == ["https://ads.example.net"]


# -- /config.json ------------------------------------------------------------------------------


async def test_config_rotates_gateways(client: TestClient) -> None:
    first = await (await client.get("/config.json")).json()
    second = await (await client.get("/config.json")).json()
    third = await (await client.get("/config.json")).json()

    assert first["gateways"] == ["http://127.0.0.1:8090", "http://127.0.0.1:8091"]
    assert second["gateways"] == ["http://127.0.0.1:8091", "http://127.0.0.1:8090"]
    assert third["gateways"] == first["gateways"]


async def test_config_has_limits_and_no_third_parties(client: TestClient) -> None:
    response = await client.get("/config.json")
    body = await response.json()

    assert response.headers["Cache-Control"] == "no-store"
    assert body["ice_servers"] == []
    assert body["limits"]["chat_max_chars"] == 1000
    assert body["limits"]["typing_idle_s"] == 3.0
    assert body["analytics_url"] is None
    assert body["ads_url"] is None
    assert body["relay_available"] is False


async def test_config_passes_ice_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    servers = [{"urls": ["turn:turn.example.org:3478"], "username": "u", "credential": "c"}]
    client = await start_client(monkeypatch, ICE_SERVERS=json.dumps(servers), CHAT_MAX_CHARS="500")
    try:
        body = await (await client.get("/config.json")).json()
    finally:
        await client.close()

    assert body["ice_servers"] == servers
    assert body["limits"]["chat_max_chars"] == 500
    assert body["relay_available"] is True


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GATEWAY_URLS", "http://127.0.0.1:8090/socket.io"),
        ("GATEWAY_URLS", "ftp://127.0.0.1:8090"),
        ("ICE_SERVERS", "{not json"),
        ("ICE_SERVERS", '[{"urls": "http://example.org"}]'),
        ("ICE_SERVERS", '{"urls": "stun:example.org"}'),
    ],
)
def test_settings_reject_invalid_value(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ConfigError, match=name):
        WebSettings.from_env()


# -- /api/events -------------------------------------------------------------------------------


def metric_value(metrics: str, name: str, label: str) -> float:
    match = re.search(rf'^{name}\{{{label}\}} ([0-9.e+]+)$', metrics, re.MULTILINE)
    assert match is not None, f"{name}{{{label}}} not in /metrics"
    return float(match.group(1))


@pytest.mark.parametrize("name", ["page_view", "call_start", "call_match", "game_play"])
async def test_event_is_counted(client: TestClient, name: str) -> None:
    response = await client.post("/api/events", json={"name": name})
    metrics = await (await client.get("/metrics")).text()

    assert response.status == 204
    assert metric_value(metrics, "calln_web_events_total", f'name="{name}"') == 1.0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "purchase"}, 400, "unknown_event"),
        ({"name": "page_view", "user_id": "abc"}, 400, "unexpected_field"),
        ({"name": "page_view", "session": 1}, 400, "unexpected_field"),
        ({}, 400, "unknown_event"),
        (["page_view"], 400, "invalid_payload"),
        ({"name": 7}, 400, "unknown_event"),
    ],
)
async def test_event_rejects_bad_body(
    client: TestClient, body: object, status: int, code: str
) -> None:
    response = await client.post("/api/events", json=body)
    payload = await response.json()

    assert response.status == status
    assert payload["error"]["code"] == code
    assert payload["error"]["message"]


async def test_event_rejects_invalid_json(client: TestClient) -> None:
    response = await client.post("/api/events", data=b"{name", headers={"Content-Type": "application/json"})

    assert response.status == 400
    assert (await response.json())["error"]["code"] == "invalid_json"


async def test_event_rejects_other_content_type(client: TestClient) -> None:
    response = await client.post("/api/events", data=b'{"name": "page_view"}', headers={"Content-Type": "text/plain"})

    assert response.status == 415
    assert (await response.json())["error"]["code"] == "unsupported_media_type"


async def test_event_rejects_large_body(client: TestClient) -> None:
    body = json.dumps({"name": "page_view", "pad": "x" * 1000}).encode()
    response = await client.post("/api/events", data=body, headers={"Content-Type": "application/json"})

    assert response.status == 413
    assert (await response.json())["error"]["code"] == "too_large"


async def test_event_rejects_large_chunked_body(client: TestClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "page_view", "pad": "'
        for _ in range(20):
            yield b"x" * 100
        yield b'"}'

    response = await client.post("/api/events", data=chunks(), headers={"Content-Type": "application/json"})

    assert response.status == 413


async def test_rejected_events_are_not_counted(client: TestClient) -> None:
    await client.post("/api/events", json={"name": "page_view", "user_id": "abc"})
    metrics = await (await client.get("/metrics")).text()

    assert metric_value(metrics, "calln_web_events_total", 'name="page_view"') == 0.0
    assert metric_value(metrics, "calln_web_events_rejected_total", 'code="unexpected_field"') == 1.0


async def test_events_get_is_json_405(client: TestClient) -> None:
    response = await client.get("/api/events")

    assert response.status == 405
    assert (await response.json())["error"]["code"] == "method_not_allowed"


# -- pages and ops -----------------------------------------------------------------------------


async def test_index_serves_page(client: TestClient) -> None:
    response = await client.get("/")
    text = await response.text()

    assert response.status == 200
    assert '<script src="/static/js/main.js" type="module">' in text
    assert "https://" not in text


async def test_privacy_shows_default_numbers(client: TestClient) -> None:
    response = await client.get("/privacy")
    text = flatten(await response.text())

    assert response.status == 200
    assert "deleted after 7 days at most" in text
    assert "kept longer than 30 days" in text
    assert "at least 3 different people within 1 day" in text
    assert "1 day, then 7 days, then 30 days" in text
    assert "None. Every font, flag and script comes from this site." in text
    assert "has not published a contact address" in text
    assert "the relay sees the addresses of both ends" in text
    assert "its log files are deleted after 7 days like every other server log" in text


async def test_privacy_follows_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    client = await start_client(
        monkeypatch,
        LOG_RETENTION_DAYS="3",
        REPORT_THRESHOLD="5",
        REPORT_WINDOW_HOURS="12",
        BAN_STEPS_HOURS="6,48",
        PRIVACY_EMAIL="privacy@calln.example",
        CONTACT_EMAIL="hello@calln.example",
        ANALYTICS_URL="https://stats.example.org/s.js",
    )
    try:
        text = flatten(await (await client.get("/privacy")).text())
    finally:
        await client.close()

    assert "deleted after 3 days at most" in text
    assert "at least 5 different people within 12 hours" in text
    assert "6 hours, then 2 days" in text
    assert '<a href="mailto:privacy@calln.example">privacy@calln.example</a>' in text
    assert '<a href="mailto:hello@calln.example">hello@calln.example</a>' in text
    assert "https://stats.example.org/s.js" in text


async def test_terms_shows_abuse_contact(monkeypatch: pytest.MonkeyPatch) -> None:
    client = await start_client(monkeypatch, ABUSE_EMAIL="abuse@calln.example")
    try:
        response = await client.get("/terms")
        text = await response.text()
    finally:
        await client.close()

    assert response.status == 200
    assert "18 or older" in text
    assert "abuse@calln.example" in text


async def test_policy_above_cap_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_RETENTION_DAYS", "8")

    with pytest.raises(ConfigError, match="LOG_RETENTION_DAYS"):
        WebSettings.from_env()


async def test_healthz_and_metrics(client: TestClient) -> None:
    health = await client.get("/healthz")
    metrics = await client.get("/metrics")

    assert health.status == 200
    assert metrics.status == 200
    assert "calln_web_events_total" in await metrics.text()
