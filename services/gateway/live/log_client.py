"""The logsink's log history, over NATS request/reply (`rpc.logsink.history`)."""

from __future__ import annotations

import asyncio

import msgspec
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from jobline.contract.events import LogPage, LogQuery, encoder
from jobline.contract.names import Names
from jobline.jobs.errors import Malformed, Unavailable

_page_decoder = msgspec.json.Decoder(LogPage)


class LogClient:
    def __init__(self, nc: Client, names: Names, wait_for_logsink_s: float = 3.0):
        self._nc = nc
        self._names = names
        self._wait_s = wait_for_logsink_s

    async def page(self, query: LogQuery) -> LogPage:
        """A page from the logsink. "No responders" is retried for a moment: a logsink that is
        reconnecting (e.g. its NATS node failed over) is back within a second or two."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._wait_s
        delay = 0.05
        while True:
            try:
                reply = await self._nc.request(self._names.log_history_rpc, encoder.encode(query), timeout=5.0)
                break
            except NoRespondersError as exc:
                if loop.time() + delay > give_up:
                    raise Unavailable("the logsink did not answer (NoRespondersError)",
                                      title="Log store unavailable") from exc
                await asyncio.sleep(delay)  # backoff between attempts
                delay = min(delay * 2, 0.5)
            except NatsTimeout as exc:
                raise Unavailable("the logsink did not answer (TimeoutError)", title="Log store unavailable") from exc
        page = _page_decoder.decode(reply.data)
        if page.error:
            raise Malformed(page.error, title="Bad log query")
        return page
