"""Run the matcher: `python -m services.matcher`."""

import asyncio

from services.matcher.app import Matcher
from services.matcher.settings import MatcherSettings
from shared.logging import configure_logging
from shared.runner import run_service, serve_until


async def serve(stop: asyncio.Event) -> None:
    settings = MatcherSettings.from_env()
    configure_logging("matcher", settings.common.log_level, settings.common.log_dir)
    await serve_until(Matcher(settings), stop)


if __name__ == "__main__":
    run_service("matcher", serve)
