"""Run one gateway: `python -m services.signalling`."""

import asyncio

from services.signalling.app import Gateway
from services.signalling.games import validate_game
from services.signalling.settings import GatewaySettings
from shared.logging import configure_logging
from shared.runner import run_service, serve_until


async def serve(stop: asyncio.Event) -> None:
    settings = GatewaySettings.from_env()
    configure_logging("gateway", settings.common.log_level, settings.common.log_dir)
    await serve_until(Gateway(settings, validate_game=validate_game), stop)


if __name__ == "__main__":
    run_service("gateway", serve)
