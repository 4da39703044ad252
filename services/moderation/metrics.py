"""Prometheus metrics of the moderation service."""

from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.bus import rejected_counter


class ModerationMetrics:
    """Every metric the moderation service exports, on its own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.rejected = rejected_counter(registry)
        self.reports_received = Counter(
            "calln_moderation_reports_received_total", "Reports received from gateways", registry=registry
        )
        self.reports_rejected = Counter(
            "calln_moderation_reports_rejected_total", "Reports not counted, by reason", ["reason"], registry=registry
        )
        self.bans_created = Counter(
            "calln_moderation_bans_created_total", "Bans stored, by source (reports or admin)", ["source"],
            registry=registry,
        )
        self.bans_erased = Counter(
            "calln_moderation_bans_erased_total", "Erase requests served through the admin API", registry=registry
        )
        self.purged_records = Counter(
            "calln_moderation_purged_records_total", "Ban records deleted at their end time", registry=registry
        )
        self.purged_files = Counter(
            "calln_moderation_purged_files_total", "Log files deleted after the retention period", registry=registry
        )
        self.purge_failures = Counter(
            "calln_moderation_purge_failures_total", "Purge passes that failed, by kind (bans or logs)", ["kind"],
            registry=registry,
        )
        self.active_bans = Gauge(
            "calln_moderation_active_bans", "Bans running at the last purge pass", registry=registry
        )

    def totals(self) -> dict[str, int]:
        """Sum each counter over its labels: the aggregate counts the admin stats return."""
        counters = {
            "reports_received": self.reports_received,
            "reports_rejected": self.reports_rejected,
            "bans_created": self.bans_created,
            "bans_erased": self.bans_erased,
            "purged_records": self.purged_records,
            "purged_files": self.purged_files,
        }
        return {name: counter_total(counter) for name, counter in counters.items()}


def counter_total(counter: Counter) -> int:
    """Sum a counter's `_total` samples over all label values."""
    samples = (sample for metric in counter.collect() for sample in metric.samples)
    return int(sum(sample.value for sample in samples if sample.name.endswith("_total")))
