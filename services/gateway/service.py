"""The gateway service: uvicorn serving the app until `stop` is set."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Generator

import uvicorn

from .app import create_app
from .http import http10
from .settings import GatewaySettings

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self.listening = asyncio.Event()

    async def startup(self, sockets: list | None = None) -> None:  # type: ignore[type-arg]
        await super().startup(sockets)
        if self.started:
            self.listening.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Signals belong to the process's own `stop` event (runtime.lifecycle), not to uvicorn.
        yield


class GatewayServer:
    """Serve the gateway in the running loop; `port` is known once `started` is set."""

    def __init__(self, settings: GatewaySettings):
        http10.install()
        config = uvicorn.Config(
            create_app(settings), host=settings.host, port=settings.port, lifespan="on",
            log_config=None, access_log=False,
            timeout_graceful_shutdown=2,  # open SSE streams would otherwise hold shutdown forever
        )
        self.server = _Server(config)
        self.settings = settings

    @property
    def port(self) -> int:
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        host = self.settings.host if self.settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.port}"

    async def serve(self, stop: asyncio.Event, started: asyncio.Event | None = None) -> None:
        task = asyncio.create_task(self.server.serve())
        stop_wait = asyncio.create_task(stop.wait())
        listening = asyncio.create_task(self.server.listening.wait())
        await asyncio.wait({task, stop_wait, listening}, return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        if stop.is_set() and not self.server.started:
            # Told to stop while starting (connecting to NATS, waiting for JetStream, catching up):
            # give up the start at once rather than finish it first.
            log.info("told to stop while starting")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            return
        if self.server.started:
            log.info("gateway listening on %s", self.url)
            if started is not None:
                started.set()
        await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        self.server.should_exit = True
        stop_wait.cancel()
        try:
            # uvicorn waits for every connection task without a bound once the graceful period is
            # over; a stuck one must not keep the gateway from stopping.
            await asyncio.wait_for(asyncio.shield(task), self.settings.shutdown_timeout_s)
        except TimeoutError:
            log.warning("connections still open after %.0fs; forcing the shutdown", self.settings.shutdown_timeout_s)
            self.server.force_exit = True
            await task
        if not self.server.started:
            raise RuntimeError("the gateway did not start (see the log above)")


async def run(settings: GatewaySettings, stop: asyncio.Event) -> None:
    await GatewayServer(settings).serve(stop)


async def run_as_process(settings: GatewaySettings, stop: asyncio.Event) -> None:
    """`run` for a process of its own (`python -m jobline.gateway`): once started, what start-up
    built (modules, the read model) lives as long as the process, so it is frozen out of every later
    full collection (docs/benchmarks.md). Not in `run`: a host process (the tests) keeps its own
    garbage collection."""
    started = asyncio.Event()

    async def freeze_once_started() -> None:
        await started.wait()
        gc.freeze()

    freezer = asyncio.create_task(freeze_once_started())
    try:
        await GatewayServer(settings).serve(stop, started)
    finally:
        freezer.cancel()
