"""Ship a service's own Python log records to the log stream (the live backend log tail)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from nats.aio.client import Client

from jobline.contract.events import ServiceLogged, encoder
from jobline.contract.names import Names

from .redaction import RedactCredentials
from .tasks import cancel_and_wait

_QUEUE_LIMIT = 10_000
_FORMATTER = logging.Formatter()  # for tracebacks (formatException is a Formatter's, not a Handler's)


class _QueueHandler(logging.Handler):
    """Hands records to the event loop from any thread; never blocks the caller."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[ServiceLogged], service: str, instance: str):
        super().__init__()
        self._loop = loop
        self._queue = queue
        self._service = service
        self._instance = instance
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("nats"):
            return  # the client's own complaints while disconnected would loop back into it
        try:
            entry = ServiceLogged(
                ts=record.created,
                service=self._service,
                instance=self._instance,
                level=record.levelname.lower(),
                logger=record.name,
                message=record.getMessage() + (("\n" + _FORMATTER.formatException(record.exc_info)) if record.exc_info else ""),
            )
            self._loop.call_soon_threadsafe(self._put, entry)
        except RuntimeError:
            pass  # loop closed during shutdown
        except Exception:
            self.handleError(record)

    def _put(self, entry: ServiceLogged) -> None:
        try:
            self._queue.put_nowait(entry)
        except asyncio.QueueFull:
            self.dropped += 1


@contextlib.asynccontextmanager
async def ship_logs(nc: Client, names: Names, service: str, instance: str, level: int = logging.INFO) -> AsyncIterator[None]:
    """While active, every record at `level` or above also goes to `logs.<service>.<level>`."""
    queue: asyncio.Queue[ServiceLogged] = asyncio.Queue(_QUEUE_LIMIT)
    handler = _QueueHandler(asyncio.get_running_loop(), queue, service, instance)
    handler.setLevel(level)
    handler.addFilter(RedactCredentials())  # (the logsink serves these records: never a credential)

    async def pump() -> None:
        while True:
            entry = await queue.get()
            try:
                # Core publish: the stream stores it; waiting for an ack per record would make
                # logging slow down the service it describes.
                await nc.publish(names.service_log(service, entry.level), encoder.encode(entry))
            finally:
                queue.task_done()

    root = logging.getLogger()
    root.addHandler(handler)
    task = asyncio.create_task(pump(), name="log-shipping")
    try:
        yield
    finally:
        root.removeHandler(handler)
        # Give records logged during shutdown a chance to leave, bounded.
        if not task.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await queue.join()
        await cancel_and_wait(task)
        if not nc.is_closed:
            with contextlib.suppress(Exception):
                await nc.flush(timeout=1)
