"""This processor in the `workers` bucket (contract/workers.py): its entry rewritten every beat, the
drain and resume requests an operator sends it, and its entry deleted when it stops cleanly.

Off the job path: one KV put per beat (5 s by default), and one a second at most while jobs start
and end (so the page shows them within a second); per job, setting an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator
from importlib import metadata

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from jobline.contract.events import encoder
from jobline.contract.workers import RUNNING_SHOWN, WorkerInfo, view_of, worker_id, workers_bucket_config
from jobline.runtime.buckets import key_value
from jobline.runtime.tasks import cancel_and_wait

from .settings import ProcessorSettings
from .worker import Worker

log = logging.getLogger(__name__)
CHANGE_GAP_S = 1.0  # a job's start or end is shown within this long (one put a second at most)
SETTLE_S = 0.2


def _version() -> str:
    try:
        return metadata.version("jobline")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown"


class Presence:
    def __init__(self, nc: Client, kv: KeyValue, settings: ProcessorSettings, worker: Worker, instance: str):
        self._nc, self._kv, self._settings, self._worker = nc, kv, settings, worker
        host = socket.gethostname()
        self.id = worker_id(host, os.getpid())
        self._info = WorkerInfo(id=self.id, instance=instance, host=host, pid=os.getpid(), version=_version(),
                                types=worker.served_types(), slots=settings.concurrency, running=0,
                                started_at=time.time(), beat_s=settings.worker_beat_s)
        self._wake = asyncio.Event()

    def entry(self) -> WorkerInfo:
        info = self._info
        info.running = self._worker.running
        info.jobs = self._worker.running_ids(RUNNING_SHOWN)
        info.jobs_done = self._worker.jobs_done
        info.draining = self._worker.quiet
        info.beat_at = time.time()
        return info

    async def _beat(self) -> None:
        try:
            await self._kv.put(self.id, encoder.encode(self.entry()))
        except Exception as exc:  # (the next beat tries again; missing three shows it as gone)
            log.warning("could not write this worker's entry (%s: %s)", type(exc).__name__, exc)

    async def _on_request(self, msg: Msg) -> None:
        action = msg.subject.rsplit(".", 1)[-1]
        if action in ("drain", "resume"):
            self._worker.set_quiet(action == "drain")
            await self._beat()  # the page shows it at once, not at the next beat
        with contextlib.suppress(Exception):
            await msg.respond(encoder.encode(view_of(self.entry())))

    def changed(self) -> None:
        """A job started or ended here: the entry is rewritten soon (at most once a second), not
        only at the next beat."""
        self._wake.set()

    async def run(self) -> None:
        """Beat until cancelled (also while the processor drains on its way out)."""
        beat_s = max(self._settings.worker_beat_s, 0.1)
        while True:
            self._wake.clear()
            await self._beat()
            await asyncio.sleep(min(CHANGE_GAP_S, beat_s))
            try:
                async with asyncio.timeout(max(beat_s - CHANGE_GAP_S, 0.0)):
                    await self._wake.wait()
                await asyncio.sleep(SETTLE_S)  # (a job that just started has its handler running by then)
            except TimeoutError:
                pass

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, nc: Client, js: JetStreamContext, settings: ProcessorSettings, worker: Worker,
                      instance: str) -> AsyncIterator[Presence]:
        """Beat and answer until the block ends; then leave the bucket (a clean stop is not "gone")."""
        kv = await key_value(js, workers_bucket_config(settings.names, settings.retention.replicas))
        presence = cls(nc, kv, settings, worker, instance)
        worker.on_change = presence.changed
        requests = await nc.subscribe(settings.names.worker_rpc(presence.id), cb=presence._on_request)
        beats = asyncio.create_task(presence.run())
        try:
            yield presence
        finally:
            await cancel_and_wait(beats)
            with contextlib.suppress(Exception):
                await requests.unsubscribe()
            with contextlib.suppress(Exception):
                await kv.delete(presence.id)
