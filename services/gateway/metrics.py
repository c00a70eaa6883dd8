"""The gateway's Prometheus metrics."""

from __future__ import annotations

from litestar.types import HTTPScope
from prometheus_client import CollectorRegistry, Counter, Gauge

from jobline.runtime.metric_series import LabelledSeries


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("jobline_http_requests_total", "HTTP requests, by method, route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.open_streams = Gauge("jobline_open_streams", "Live event streams (SSE clients)", registry=self.registry)
        self.events_sent = Counter("jobline_stream_events_sent_total", "Event frames queued to stream clients",
                                   registry=self.registry)
        self.slow_clients = Counter("jobline_stream_clients_dropped_total", "Stream clients cut off for not reading",
                                    registry=self.registry)
        self.stream_lag = Gauge("jobline_read_model_lag", "Job events stored but not yet applied by this gateway",
                                registry=self.registry)
        self.jobs = Gauge("jobline_read_model_jobs", "Jobs in this gateway's read model", registry=self.registry)
        self._frames_counted = 0
        self.submitted = Counter("jobline_jobs_submitted_total", "Jobs created through this gateway", ["type"],
                                 registry=self.registry)
        self._request_series = LabelledSeries(self.requests)
        self._submitted_series = LabelledSeries(self.submitted)

    def count_frames(self, total: int) -> None:
        """The hub counts frames as a plain int (a counter call per frame and client costs more than
        the frame); the counter catches up when scraped."""
        self.events_sent.inc(total - self._frames_counted)
        self._frames_counted = total

    def count_request(self, scope: HTTPScope, status: int) -> None:
        # The route template, not the path: one series per route, not per job id.
        route = scope.get("path_template") or ("/static" if not scope["path"].startswith("/api") else "other")
        self._request_series(scope["method"], route, str(status)).inc()

    def count_submitted(self, job_type: str) -> None:
        self._submitted_series(job_type).inc()
