"""Prometheus metrics of the matcher."""

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.bus import rejected_counter

# Seconds; people give up after a minute or two, so buckets beyond 120 s add no information.
WAIT_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)


class QueueLengthCollector(Collector):
    """Reads the queue length per country at scrape time, so joins never touch a gauge."""

    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("calln_matcher_queue_length", "People waiting, by own country", labels=["country"])
        for country, count in sorted(self._counts().items()):
            family.add_metric([country], count)
        yield family


class MatcherMetrics:
    """Every metric the matcher exports, on its own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.rejected = rejected_counter(registry)
        self.wait_seconds = Histogram(
            "calln_matcher_wait_seconds", "Time from join to a started call", buckets=WAIT_BUCKETS_S, registry=registry
        )
        self.proposals = Counter("calln_matcher_proposals_total", "Calls proposed to gateways", registry=registry)
        self.matches = Counter("calln_matcher_matches_total", "Calls confirmed by both gateways", registry=registry)
        self.requeues = Counter(
            "calln_matcher_requeues_total", "Proposals that did not start (timed out or lost a side)", registry=registry
        )
        self.lease_changes = Counter(
            "calln_matcher_lease_changes_total", "Times this matcher became or stopped being leader", registry=registry
        )
        self.is_leader = Gauge("calln_matcher_is_leader", "1 while this matcher holds the lease", registry=registry)
        self.epoch = Gauge("calln_matcher_epoch", "Epoch of the lease this matcher holds", registry=registry)
        self.gateways_dropped = Counter(
            "calln_matcher_gateway_entries_dropped_total",
            "Waiting entries dropped because their gateway went silent, restarted or drained",
            registry=registry,
        )

    def watch_queue(self, counts: Callable[[], dict[str, int]]) -> None:
        self.registry.register(QueueLengthCollector(counts))
