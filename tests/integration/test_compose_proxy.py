"""The compose reverse proxy (deploy/compose/nginx.conf) run by a real nginx in front of stand-in services.

The compose host names are rewritten to loopback ports; everything else in the config is used as is.
Skipped where no nginx binary is installed (Debian: `apt-get install nginx-light`).
"""

import asyncio
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.support.deploy import ROOT
from tests.support.nats_server import free_port

NGINX_CONF = ROOT / "deploy" / "compose" / "nginx.conf"

# Seconds nginx gets to open its port, and to exit after SIGTERM; it needs well under one for each.
NGINX_START_TIMEOUT_S = 10.0
NGINX_STOP_TIMEOUT_S = 10.0

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")


@dataclass
class StandIn:
    """An aiohttp server that plays one compose service and reports its name."""

    name: str
    port: int
    runner: web.AppRunner

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_stand_in(name: str) -> StandIn:
    async def socketio(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.json_response({"served_by": name, "forwarded_for": request.headers.get("X-Forwarded-For")})
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        await socket.send_json({"served_by": name, "forwarded_for": request.headers.get("X-Forwarded-For")})
        async for message in socket:
            await socket.send_str(f"{name}:{message.data}")
        return socket

    async def page(request: web.Request) -> web.Response:
        return web.json_response({"served_by": name, "path": request.path})

    app = web.Application()
    app.router.add_get("/socket.io/", socketio)
    app.router.add_get("/{tail:.*}", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return StandIn(name, port, runner)


def loopback_config(folder: Path, listen_port: int, ports: dict[str, int]) -> Path:
    """Write nginx.conf with compose host names replaced by loopback ports and /tmp by `folder`."""
    conf = NGINX_CONF.read_text(encoding="utf-8")
    for host, port in ports.items():
        conf, count = re.subn(rf"server {host}:\d+", f"server 127.0.0.1:{port}", conf)
        assert count == 1, f"nginx.conf has no upstream server {host}"
    conf, count = re.subn(r"listen 8080;", f"listen 127.0.0.1:{listen_port};", conf)
    assert count == 1, "nginx.conf no longer listens on 8080"
    conf = conf.replace("/tmp/", f"{folder}/")
    path = folder / "nginx.conf"
    path.write_text(conf, encoding="utf-8")
    return path


async def wait_for_nginx(process: asyncio.subprocess.Process, port: int, timeout_s: float) -> None:
    """Return once nginx accepts connections on `port`; fail with its error output if it exits first."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        if process.returncode is not None:
            assert process.stderr is not None
            error_output = (await process.stderr.read()).decode(errors="replace")
            pytest.fail(f"nginx exited with status {process.returncode}: {error_output}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"nginx did not open port {port} within {timeout_s} s") from None
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return


@pytest.fixture
async def stand_ins() -> AsyncIterator[dict[str, StandIn]]:
    services = {name: await start_stand_in(name) for name in ("gateway-1", "gateway-2", "web")}
    yield services
    for service in services.values():
        await service.stop()


@pytest.fixture
async def proxy_url(stand_ins: dict[str, StandIn], tmp_path: Path) -> AsyncIterator[str]:
    listen_port = free_port()
    conf = loopback_config(tmp_path, listen_port, {name: stand_in.port for name, stand_in in stand_ins.items()})
    command = ["nginx", "-c", str(conf), "-p", str(tmp_path), "-g", "daemon off;"]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        await wait_for_nginx(process, listen_port, NGINX_START_TIMEOUT_S)
        yield f"http://127.0.0.1:{listen_port}"
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), NGINX_STOP_TIMEOUT_S)


async def test_proxy_routes_root_to_web(proxy_url: str) -> None:
    async with aiohttp.ClientSession() as client, client.get(f"{proxy_url}/privacy") as response:
        body = await response.json()

    assert response.status == 200
    assert body == {"served_by": "web", "path": "/privacy"}


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz"])
async def test_proxy_hides_ops_paths(proxy_url: str, path: str) -> None:
    async with aiohttp.ClientSession() as client, client.get(f"{proxy_url}{path}") as response:
        assert response.status == 404


async def test_proxy_upgrades_socketio_websocket(proxy_url: str) -> None:
    async with aiohttp.ClientSession() as client:
        socket = await client.ws_connect(f"{proxy_url}/socket.io/?EIO=4&transport=websocket")
        hello = await socket.receive_json(timeout=5)
        await socket.send_str("ping")
        echo = await socket.receive_str(timeout=5)
        await socket.close()

    assert hello["served_by"] in ("gateway-1", "gateway-2")
    assert hello["forwarded_for"] == "127.0.0.1"
    assert echo == f"{hello['served_by']}:ping"


async def test_proxy_skips_stopped_gateway(proxy_url: str, stand_ins: dict[str, StandIn]) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{proxy_url}/socket.io/?EIO=4&transport=polling") as response:
            first = (await response.json())["served_by"]
        await stand_ins[first].stop()

        async with client.get(f"{proxy_url}/socket.io/?EIO=4&transport=polling") as response:
            second = (await response.json())["served_by"]

    assert first in ("gateway-1", "gateway-2")
    assert second in ("gateway-1", "gateway-2")
    assert second != first


async def test_proxy_keeps_client_on_one_gateway(proxy_url: str) -> None:
    served_by: set[str] = set()
    async with aiohttp.ClientSession() as client:
        for _ in range(5):
            async with client.get(f"{proxy_url}/socket.io/?EIO=4&transport=polling") as response:
                served_by.add((await response.json())["served_by"])

    assert len(served_by) == 1
