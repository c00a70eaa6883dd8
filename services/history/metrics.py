"""The history service's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class HistoryMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter("jobline_history_events_written_total", "Job events stored (redeliveries not counted)",
                              registry=self.registry)
        self.applied_seq = Gauge("jobline_history_applied_seq", "The job stream is applied up to this sequence",
                                 registry=self.registry)
        self.lag = Gauge("jobline_history_lag", "Job events not yet stored (the consumer's pending count)",
                         registry=self.registry)
        self.batch_seconds = Histogram("jobline_history_batch_seconds", "Time to fold and commit one batch",
                                       registry=self.registry)
        self.write_errors = Counter("jobline_history_write_errors_total",
                                    "Batches not written because the database was unavailable (retried)",
                                    registry=self.registry)
        self.skipped = Counter("jobline_history_skipped_total", "Messages that could not be stored and were skipped",
                               registry=self.registry)
        self.missed = Counter("jobline_history_missed_total",
                              "Job events the stream dropped (retention) before the history stored them",
                              registry=self.registry)
        self.pruned = Counter("jobline_history_pruned_total", "Jobs removed by retention", registry=self.registry)
        self.writer = Gauge("jobline_history_writer", "1 when this instance writes, 0 while it stands by",
                            registry=self.registry)
