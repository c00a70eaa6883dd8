"""The logsink's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class LogsinkMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rows = Counter("jobline_log_rows_written_total", "Log rows stored (redeliveries not counted)",
                            registry=self.registry)
        self.lag = Gauge("jobline_logsink_lag", "Log messages not yet stored (the consumer's pending count)",
                         registry=self.registry)
