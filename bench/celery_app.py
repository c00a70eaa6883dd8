"""The peer: a Celery 5 app with a Redis broker and result backend, and the same noop task.

The worker is started by `bench/celery_peer.py` as `celery -A bench.celery_app worker`; the broker
URL comes from BENCH_REDIS_URL (a redis-server the benchmark starts on a loopback port).
"""

from __future__ import annotations

import os
import time

from celery import Celery

redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
app = Celery("bench", broker=redis_url, backend=redis_url)
app.conf.update(
    task_serializer="json", result_serializer="json", accept_content=["json"],
    worker_prefetch_multiplier=64,  # Celery's best case for tiny tasks
    broker_connection_retry_on_startup=True, task_default_queue="bench",
)


@app.task(name="bench.noop")
def noop() -> float:
    """Does nothing; returns when it finished (wall clock, same machine) to time the task."""
    return time.time()
