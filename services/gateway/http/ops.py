"""HTTP routes for operators and the UI's plumbing: metrics, liveness, readiness, the vocabulary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Response, get
from litestar.di import NamedDependency
from nats.aio.client import Client
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from jobline.contract.browser import as_javascript
from jobline.jobs.timeline import last_event_seq

from ..live.streams import Live
from ..metrics import GatewayMetrics

VOCABULARY_JS = as_javascript()


@dataclass
class Readiness:
    """Ready once started (connected, caught up); not any more once stopping."""

    nc: Client
    started: bool = False

    @property
    def ready(self) -> bool:
        return self.started and self.nc.is_connected


@get("/metrics", summary="Prometheus metrics", media_type="text/plain")
async def prometheus_metrics(metrics: NamedDependency[GatewayMetrics], live: NamedDependency[Live]) -> Response[bytes]:
    metrics.open_streams.set(live.hub.listener_count)
    metrics.count_frames(live.hub.frames_queued)
    metrics.jobs.set(len(live.read_model))
    try:
        last = await last_event_seq(live.js, live.names)
        metrics.stream_lag.set(max(last - live.read_model.last_seq, 0))
    except Exception:  # NATS away: report what is known
        pass
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


@get("/healthz", summary="Liveness", include_in_schema=True)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", summary="Readiness: connected to NATS and the read model caught up")
async def readyz(readiness: NamedDependency[Readiness], live: NamedDependency[Live]) -> Response[dict[str, Any]]:
    ready = readiness.ready
    body = {"status": "ready" if ready else "not ready", "jobs": len(live.read_model), "last_seq": live.read_model.last_seq}
    return Response(body, status_code=200 if ready else 503)


@get("/vocabulary.js", summary="The words the web UI shares with the services", include_in_schema=False,
     media_type="text/javascript")
async def vocabulary() -> Response[str]:
    """Job statuses, event kinds and failure reasons as an ES module, built from the contract
    (services/contract/vocabulary.py): the UI imports them instead of copying them."""
    return Response(VOCABULARY_JS, media_type="text/javascript",  # (Litestar adds the charset)
                    headers={"Cache-Control": "no-cache"})


ops_handlers = [prometheus_metrics, healthz, readyz, vocabulary]
