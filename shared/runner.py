"""Process entry point shared by services: logging, settings errors, SIGTERM and a bounded stop."""

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from shared.errors import ConfigError

# Exit status for a setting that is missing or invalid, so supervisors can tell it from a crash.
CONFIG_ERROR_EXIT = 2


class Service(Protocol):
    """A service object with a start and a close, such as the matcher, a gateway or moderation."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...


async def serve_until(service: Service, stop: asyncio.Event) -> None:
    """Start the service, wait for `stop`, and close the service however the wait ends."""
    await service.start()
    try:
        await stop.wait()
    finally:
        await service.close()


def run_service(name: str, serve: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `serve(stop)` until SIGTERM or SIGINT sets `stop`; exit 2 on a configuration error."""
    try:
        asyncio.run(_main(name, serve))
    except ConfigError as exc:
        print(f"{name}: configuration error: {exc}", file=sys.stderr)
        sys.exit(CONFIG_ERROR_EXIT)
    except KeyboardInterrupt:
        pass


async def _main(name: str, serve: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    log = structlog.get_logger(name)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    await serve(stop)
    log.info("service_stopped")
