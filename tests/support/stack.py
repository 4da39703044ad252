"""Start Calln services for tests: in-process on free ports, or as real subprocesses."""

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from services.matcher.app import Matcher
from services.matcher.settings import MatcherSettings
from services.signalling.app import Gateway
from services.signalling.geo import CountryLookup
from services.signalling.settings import GatewaySettings
from shared.settings import CommonSettings
from tests.support.nats_server import free_port

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# One GeoIP table for every in-process gateway: loading it takes about 0.1 s each time.
_COUNTRIES: CountryLookup | None = None


def countries() -> CountryLookup:
    global _COUNTRIES
    if _COUNTRIES is None:
        _COUNTRIES = CountryLookup()
    return _COUNTRIES


def common_settings(nats_url: str) -> CommonSettings:
    return dataclasses.replace(CommonSettings.from_env(), nats_url=nats_url)


def matcher_settings(nats_url: str, **overrides: Any) -> MatcherSettings:
    base = MatcherSettings.from_env()
    values: dict[str, Any] = {"common": common_settings(nats_url), "http_port": 0, "tick_interval_s": 0.05}
    values.update(overrides)
    return dataclasses.replace(base, **values)


def gateway_settings(nats_url: str, gateway_id: str, **overrides: Any) -> GatewaySettings:
    base = GatewaySettings.from_env()
    values: dict[str, Any] = {
        "common": common_settings(nats_url),
        "gateway_id": gateway_id,
        "port": 0,
        "heartbeat_interval_s": 0.2,
        "online_interval_s": 0.5,
        "drain_timeout_s": 1.0,
    }
    values.update(overrides)
    return dataclasses.replace(base, **values)


@dataclass
class Stack:
    """A matcher and gateways running in this test's event loop."""

    nats_url: str
    matcher: Matcher
    gateways: list[Gateway] = field(default_factory=list)

    def url(self, index: int = 0) -> str:
        return f"http://127.0.0.1:{self.gateways[index].port}"


async def wait_for_leader(matcher: Matcher, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not matcher.is_leader:
        if time.monotonic() > deadline:
            raise TimeoutError("matcher did not take the lease")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running_stack(
    nats_url: str,
    gateways: int = 2,
    gateway_overrides: dict[str, Any] | None = None,
    matcher_overrides: dict[str, Any] | None = None,
    game_validator: Any = None,
    bans: Any = None,
) -> AsyncIterator[Stack]:
    """Run a matcher and `gateways` gateways in-process until the block ends."""
    matcher = Matcher(matcher_settings(nats_url, **(matcher_overrides or {})))
    await matcher.start()
    stack = Stack(nats_url, matcher)
    try:
        await wait_for_leader(matcher)
        for index in range(gateways):
            settings = gateway_settings(nats_url, f"gw{index}", **(gateway_overrides or {}))
            gateway = Gateway(settings, bans=bans, validate_game=game_validator, countries=countries())
            await gateway.start()
            stack.gateways.append(gateway)
        yield stack
    finally:
        for gateway in reversed(stack.gateways):
            await gateway.close()
        await matcher.close()


# -- subprocesses -----------------------------------------------------------------------------


@dataclass
class ServiceProcess:
    """A service started with `python -m`, stopped by its own process id."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: str

    def terminate(self, timeout_s: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)

    def log_text(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()


def spawn_service(module: str, env: dict[str, str], log_path: str, port: int, name: str) -> ServiceProcess:
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", module], cwd=REPO_ROOT, env=full_env, stdout=log_file, stderr=subprocess.STDOUT
        )
    return ServiceProcess(name, process, port, log_path)


async def wait_ready(port: int, timeout_s: float = 20.0, process: ServiceProcess | None = None) -> None:
    """Poll /readyz until it returns 200."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if process is not None and process.process.poll() is not None:
                raise RuntimeError(f"{process.name} exited early:\n{process.log_text()[-3000:]}")
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"service on port {port} not ready after {timeout_s} s")


@contextmanager
def service_processes(log_dir: str) -> Iterator[list[ServiceProcess]]:
    """Collect processes started in the block and stop the survivors at the end."""
    processes: list[ServiceProcess] = []
    try:
        yield processes
    finally:
        for process in processes:
            try:
                process.terminate()
            except subprocess.TimeoutExpired:
                process.kill()


def gateway_env(nats_url: str, gateway_id: str, port: int | None = None, **extra: str) -> dict[str, str]:
    return {
        "NATS_URL": nats_url,
        "GATEWAY_ID": gateway_id,
        "GATEWAY_PORT": str(port or free_port()),
        "HEARTBEAT_INTERVAL_S": "0.2",
        "DRAIN_TIMEOUT_S": "2",
        **extra,
    }


def matcher_env(nats_url: str, matcher_id: str, port: int | None = None, **extra: str) -> dict[str, str]:
    return {
        "NATS_URL": nats_url,
        "MATCHER_ID": matcher_id,
        "MATCHER_HTTP_PORT": str(port or free_port()),
        "HEARTBEAT_INTERVAL_S": "0.2",
        **extra,
    }


@dataclass
class ProcessStack:
    """Matcher and gateway processes started by `spawn_stack`."""

    matchers: list[ServiceProcess]
    gateways: list[ServiceProcess]

    def gateway_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.gateways[index].port}"


async def spawn_gateway(
    nats_url: str, log_dir: str, name: str, port: int | None = None, extra: dict[str, str] | None = None
) -> ServiceProcess:
    """Start one gateway process and wait until it is ready."""
    port = port or free_port()
    log_path = os.path.join(log_dir, f"{name}-{time.monotonic_ns()}.log")
    process = spawn_service(
        "services.signalling", gateway_env(nats_url, name, port, **(extra or {})), log_path, port, name
    )
    await wait_ready(port, process=process)
    return process


async def spawn_matcher(nats_url: str, log_dir: str, name: str, extra: dict[str, str] | None = None) -> ServiceProcess:
    """Start one matcher process and wait until it is ready."""
    port = free_port()
    log_path = os.path.join(log_dir, f"{name}.log")
    process = spawn_service(
        "services.matcher", matcher_env(nats_url, name, port, **(extra or {})), log_path, port, name
    )
    await wait_ready(port, process=process)
    return process


async def spawn_stack(
    nats_url: str,
    log_dir: str,
    processes: list[ServiceProcess],
    gateways: int = 2,
    matchers: int = 1,
    gateway_extra: dict[str, str] | None = None,
    matcher_extra: dict[str, str] | None = None,
) -> ProcessStack:
    """Start matchers then gateways as processes, each ready before the next; `processes` owns them."""
    stack = ProcessStack([], [])
    for index in range(matchers):
        stack.matchers.append(await spawn_matcher(nats_url, log_dir, f"m{index}", matcher_extra))
        processes.append(stack.matchers[-1])
    for index in range(gateways):
        stack.gateways.append(await spawn_gateway(nats_url, log_dir, f"gw{index}", None, gateway_extra))
        processes.append(stack.gateways[-1])
    return stack
