"""Run the web service: `python -m services.web`."""

import asyncio

from services.web.app import run_web
from services.web.settings import WebSettings
from shared.logging import configure_logging
from shared.runner import run_service


async def serve(stop: asyncio.Event) -> None:
    settings = WebSettings.from_env()
    configure_logging("web", settings.log_level, settings.log_dir)
    await run_web(settings, stop)


if __name__ == "__main__":
    run_service("web", serve)
