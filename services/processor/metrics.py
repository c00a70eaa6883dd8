"""The processor's Prometheus metrics."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ProcessorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.running = Gauge("jobline_jobs_running", "Jobs running in this processor", registry=self.registry)
        self.outcomes = Counter("jobline_jobs_total", "Attempts ended, by type and outcome", ["type", "outcome"],
                                registry=self.registry)
        self.duration = Histogram("jobline_job_duration_seconds", "Run time of an attempt", ["type", "outcome"],
                                  registry=self.registry,
                                  buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600))
        # labels() hashes and locks on every call; a few types × outcomes are looked up once each.
        self._ended: dict[tuple[str, str], tuple[Any, Any]] = {}

    def attempt_ended(self, job_type: str, outcome: str, seconds: float) -> None:
        children = self._ended.get((job_type, outcome))
        if children is None:
            children = self._ended[(job_type, outcome)] = (self.outcomes.labels(job_type, outcome),
                                                           self.duration.labels(job_type, outcome))
        children[0].inc()
        children[1].observe(seconds)
