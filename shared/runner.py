"""Process entry point shared by services: logging, settings errors, SIGTERM and a bounded stop."""

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable

import structlog

from shared.errors import ConfigError

# Exit status for a setting that is missing or invalid, so supervisors can tell it from a crash.
CONFIG_ERROR_EXIT = 2


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
