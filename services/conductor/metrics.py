"""The conductor's Prometheus metrics (its ops port's /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class ConductorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.flow_messages = Counter("jobline_flow_messages_total", "Flow signals and spawn requests handled",
                                     registry=self.registry)
        self.schedule_jobs = Counter("jobline_schedule_jobs_total", "Jobs made by recurring schedules' ticks",
                                     registry=self.registry)
        self.signal_resumes = Counter("jobline_signal_resumes_total", "Waiting jobs resumed by their signal (or its timeout)",
                                      registry=self.registry)
        self.webhook_attempts = Counter("jobline_webhook_attempts_total", "Webhook deliveries tried, by outcome",
                                        ["delivered"], registry=self.registry)
