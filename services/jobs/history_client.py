"""A client of the history service (over NATS request/reply, contract/history.py).

Every call is bounded: no history service answers "no responders" at once, a stuck one times out
after `timeout_s`. Both become `HistoryUnavailable`; a request the store refuses becomes
`HistoryRefused` (the domain's errors: the gateway answers 503 and 400).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

import msgspec
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from jobline.contract.events import encoder
from jobline.contract.history import (
    ActivityReply,
    ActivityRequest,
    CountsReply,
    CountsRequest,
    EventsPage,
    EventsRequest,
    JobFilter,
    JobReply,
    JobRequest,
    JobsPage,
    SearchRequest,
    StatusReply,
    StatusRequest,
    StoredRecord,
    WindowPage,
    WindowRequest,
)
from jobline.contract.job_state import JobState
from jobline.contract.names import Names

from .errors import Malformed, Unavailable

R = TypeVar("R")
state_decoder = msgspec.json.Decoder(JobState)


class HistoryUnavailable(Unavailable):
    """No history service answered, or its database failed."""

    title = "History unavailable"


class HistoryRefused(Malformed):
    """The history service refused the request as malformed (the client's filter)."""

    title = "Bad history query"


class HistoryClient:
    def __init__(self, nc: Client, names: Names, timeout_s: float = 5.0):
        self._nc = nc
        self._names = names
        self.timeout_s = timeout_s
        self._decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}

    async def _call(self, endpoint: str, request: msgspec.Struct, reply_type: type[R], timeout: float | None = None) -> R:
        try:
            msg = await self._nc.request(self._names.history_rpc(endpoint), encoder.encode(request),
                                         timeout=timeout or self.timeout_s)
        except NoRespondersError as exc:
            raise HistoryUnavailable("no history service is running") from exc
        except NatsTimeout as exc:
            raise HistoryUnavailable("the history service did not answer in time") from exc
        headers = msg.headers or {}
        code = headers.get("Nats-Service-Error-Code")
        if code:
            description = headers.get("Nats-Service-Error", "")
            if code == "400":
                raise HistoryRefused(description)
            raise HistoryUnavailable(description or f"history error {code}")
        decoder = self._decoders.get(reply_type)
        if decoder is None:
            decoder = self._decoders[reply_type] = msgspec.json.Decoder(reply_type)
        return decoder.decode(msg.data)  # type: ignore[no-any-return]

    async def window(self, recent: int, *, timeout: float | None = None) -> tuple[list[JobState], int]:
        """The jobs a gateway holds in memory (the `recent` newest and every one not ended) and
        the stream position they reflect (the first page's: later pages may be newer, which the
        fold's sequence check makes harmless)."""
        states: list[JobState] = []
        applied: int | None = None
        before: int | None = None
        floor: int | None = None
        while True:
            page = await self._call("window", WindowRequest(recent=recent, before=before, floor=floor), WindowPage,
                                    timeout)
            applied = page.applied_seq if applied is None else applied
            states.extend(state_decoder.decode(raw) for raw in page.jobs)
            if page.next_before is None:
                return states, applied
            before, floor = page.next_before, page.floor

    async def job(self, job_id: str, min_seq: int = 0) -> JobState | None:
        reply = await self._call("job", JobRequest(id=job_id, min_seq=min_seq), JobReply)
        return None if bytes(reply.job) == b"null" else state_decoder.decode(reply.job)

    async def search(self, job_filter: JobFilter, *, before: int | None, limit: int, min_seq: int = 0) -> JobsPage:
        return await self._call("search", SearchRequest(filter=job_filter, before=before, limit=limit, min_seq=min_seq),
                                JobsPage)

    async def events(self, job_id: str, *, after_seq: int = 0, upto_seq: int | None = None, only_logs: bool = False,
                     last: int | None = None, min_seq: int = 0) -> tuple[list[StoredRecord], int]:
        """Every stored event of the job in the range (all pages), and the store's position."""
        out: list[StoredRecord] = []
        applied = 0
        async for page in self._event_pages(job_id, after_seq, upto_seq, only_logs, last, min_seq):
            out.extend(page.events)
            applied = page.applied_seq
        return out, applied

    async def _event_pages(self, job_id: str, after_seq: int, upto_seq: int | None, only_logs: bool, last: int | None,
                           min_seq: int) -> AsyncIterator[EventsPage]:
        while True:
            page = await self._call("events", EventsRequest(job_id=job_id, after_seq=after_seq, upto_seq=upto_seq,
                                                            only_logs=only_logs, last=last, min_seq=min_seq), EventsPage)
            yield page
            if page.next_after is None or last is not None:
                return
            after_seq, min_seq = page.next_after, 0

    async def counts(self, owners: list[str] | None = None, tags: list[str] | None = None) -> CountsReply:
        return await self._call("counts", CountsRequest(owners=owners or [], tags=tags or []), CountsReply)

    async def activity(self, since: float, bucket_s: int, job_type: str | None, owners: list[str] | None = None,
                       tags: list[str] | None = None) -> ActivityReply:
        request = ActivityRequest(since=since, bucket_s=bucket_s, type=job_type, owners=owners or [], tags=tags or [])
        return await self._call("activity", request, ActivityReply)

    async def status(self) -> StatusReply:
        return await self._call("status", StatusRequest(), StatusReply)
