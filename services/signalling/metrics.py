"""Prometheus metrics of a gateway."""

from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.bus import rejected_counter


class GatewayMetrics:
    """Every metric a gateway exports, on its own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.rejected = rejected_counter(registry)

        # Load: what the autoscaler and the online count read.
        self.sessions = Gauge("calln_gateway_sessions", "Sockets connected to this gateway", registry=registry)
        self.waiting = Gauge(
            "calln_gateway_waiting", "Sessions of this gateway waiting for a partner", registry=registry
        )
        self.in_call = Gauge("calln_gateway_in_call", "Sessions of this gateway in a call", registry=registry)

        # Browser traffic and what was rejected or dropped.
        self.events = Counter("calln_gateway_events_total", "Browser events received", ["event"], registry=registry)
        self.client_errors = Counter(
            "calln_gateway_client_errors_total", "Browser events rejected, by error code", ["code"], registry=registry
        )
        self.relays_dropped = Counter(
            "calln_gateway_relays_dropped_total",
            "Relayed events dropped at delivery, by reason",
            ["reason"],
            registry=registry,
        )

        # Calls and their lifecycle.
        self.stale_assignments = Counter(
            "calln_gateway_stale_assignments_total",
            "Assignments ignored because their epoch was old",
            registry=registry,
        )
        self.connections_refused = Counter(
            "calln_gateway_connections_refused_total", "Connections refused, by reason", ["reason"], registry=registry
        )
        self.calls_started = Counter(
            "calln_gateway_calls_started_total", "Calls started on this gateway's side", registry=registry
        )
        self.resumed = Counter(
            "calln_gateway_resumed_total", "Sessions carried on from a draining gateway", registry=registry
        )
