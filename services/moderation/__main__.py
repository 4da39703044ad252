"""Run the moderation service: `python -m services.moderation`."""

import asyncio

from services.moderation.app import Moderation
from services.moderation.settings import ModerationSettings
from shared.logging import configure_logging
from shared.runner import run_service, serve_until


async def serve(stop: asyncio.Event) -> None:
    settings = ModerationSettings.from_env()
    configure_logging("moderation", settings.common.log_level, settings.common.log_dir)
    await serve_until(Moderation(settings), stop)


if __name__ == "__main__":
    run_service("moderation", serve)
