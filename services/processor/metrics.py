"""The processor's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from jobline.runtime.metric_series import LabelledSeries


class ProcessorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.running = Gauge("jobline_jobs_running", "Jobs running in this processor", registry=self.registry)
        self.outcomes = Counter("jobline_jobs_total", "Attempts ended, by type and outcome", ["type", "outcome"],
                                registry=self.registry)
        self.duration = Histogram("jobline_job_duration_seconds", "Run time of an attempt", ["type", "outcome"],
                                  registry=self.registry,
                                  buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600))
        self._outcomes = LabelledSeries(self.outcomes)
        self._durations = LabelledSeries(self.duration)

    def attempt_ended(self, job_type: str, outcome: str, seconds: float) -> None:
        self._outcomes(job_type, outcome).inc()
        self._durations(job_type, outcome).observe(seconds)
