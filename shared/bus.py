"""NATS connection and typed subscriptions that reject bad payloads without crashing."""

from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client import Counter

from shared.codec import decode
from shared.errors import DecodeError
from shared.events import Event

# Seconds between reconnect attempts; attempts never stop, so a broker restart heals by itself.
RECONNECT_WAIT_S = 0.5

log = structlog.get_logger("bus")

E = TypeVar("E", bound=Event)


async def connect_nats(url: str, name: str, connect_timeout_s: float) -> Client:
    """Connect to NATS, retrying forever, with every state change logged."""

    async def on_error(exc: Exception) -> None:
        log.warning("nats_error", client=name, error=str(exc) or type(exc).__name__)

    async def on_disconnected() -> None:
        log.warning("nats_disconnected", client=name)

    async def on_reconnected() -> None:
        log.info("nats_reconnected", client=name)

    async def on_closed() -> None:
        log.info("nats_closed", client=name)

    log.info("nats_connecting", client=name)
    client = await nats.connect(
        servers=[url],
        name=name,
        connect_timeout=connect_timeout_s,
        reconnect_time_wait=RECONNECT_WAIT_S,
        max_reconnect_attempts=-1,
        allow_reconnect=True,
        error_cb=on_error,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
        closed_cb=on_closed,
    )
    log.info("nats_connected", client=name)
    return client


def rejected_counter(registry: object) -> Counter:
    """Create the counter of NATS payloads a service rejected, by subject pattern."""
    return Counter(
        "calln_nats_rejected_total",
        "NATS messages rejected as malformed, oversized or of an unknown version",
        ["subject"],
        registry=registry,  # type: ignore[arg-type]  # CollectorRegistry; typed loosely to keep imports light
    )


async def subscribe_event(
    client: Client,
    subject: str,
    event_type: type[E],
    handler: Callable[[E], Awaitable[None]],
    rejected: Counter,
    queue: str = "",
) -> Subscription:
    """Subscribe `handler` to typed events; a bad payload is logged and counted, then skipped."""

    async def on_message(message: Msg) -> None:
        try:
            event = decode(message.data, event_type)
        except DecodeError as exc:
            rejected.labels(subject=subject).inc()
            log.warning("nats_message_rejected", subject=message.subject, error=str(exc))
            return
        try:
            await handler(event)
        except Exception:
            log.exception("nats_handler_failed", subject=message.subject, kind=event_type.kind)

    return await client.subscribe(subject, queue=queue, cb=on_message)
