"""Answer log history queries on the logsink's request/reply subject."""

from __future__ import annotations

import asyncio
import logging

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from jobline.contract.events import LogPage, LogQuery, encoder
from jobline.contract.names import Names

from .store import LogStore

log = logging.getLogger(__name__)
_query_decoder = msgspec.json.Decoder(LogQuery)


async def serve_history(nc: Client, names: Names, store: LogStore) -> Subscription:
    loop = asyncio.get_running_loop()

    async def answer(msg: Msg) -> None:
        try:
            query = _query_decoder.decode(msg.data)
        except msgspec.DecodeError as exc:
            await msg.respond(encoder.encode(LogPage(rows=[], last_seq=0, error=f"bad query: {exc}")))
            return
        try:
            rows = await loop.run_in_executor(store.reader, store.query, query)
        except (OverflowError, ValueError) as exc:  # e.g. a position beyond SQLite's integers: say so, do not go silent
            await msg.respond(encoder.encode(LogPage(rows=[], last_seq=0, error=f"bad query: {exc}")))
            return
        await msg.respond(encoder.encode(LogPage(rows=rows, last_seq=rows[-1].seq if rows else query.after_seq)))

    # A queue group: several logsinks sharing one database could answer in turn.
    return await nc.subscribe(names.log_history_rpc, queue="logsink", cb=answer)
