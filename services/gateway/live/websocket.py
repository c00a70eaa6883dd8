"""`/ws`: the same live events over a WebSocket, for clients that prefer one.

Client → server (JSON): `{"op": "subscribe", "id": "a", "jobs": ["<job id>", …], "logs": true,
"after": <seq>}`, `{"op": "subscribe", "id": "all", "firehose": true, "type": "…", "status": "…"}`,
`{"op": "unsubscribe", "id": "a"}`. Server → client: `{"sub": "a", "type": "snapshot" | "reset" |
"event", "seq": 123, "kind": "progressed", "data": {…}}` with the same payloads as the SSE streams,
and `{"type": "error", "detail": "…"}`. `after` resumes a subscription with no gap or duplicate.
A browser's `Origin` must be this gateway's own (scheme included) or one of JOBLINE_CORS_ORIGINS
(checked before the handshake, with the `Host`: http/guard.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, cast

import msgspec
from litestar import WebSocket, websocket
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect

from jobline.contract.names import is_valid_job_id
from jobline.jobs.errors import JobError

from ..http.auth import Auth, client_of
from ..http.job_scope import check_visible, scope_of, subscription_refusal
from ..http.limits import MAX_WATCHED_JOBS, MAX_WS_SUBSCRIPTIONS
from ..settings import GatewaySettings
from . import sse
from .hub import WideFilter, frames_of
from .multiplex import multiplexed
from .streams import Live

log = logging.getLogger(__name__)


# Bounded fields: a subscription's id is echoed in every message sent for it.
Name = Annotated[str, msgspec.Meta(max_length=64)]
Filter = Annotated[str, msgspec.Meta(max_length=512)]


class Subscribe(msgspec.Struct, forbid_unknown_fields=True):
    op: Name
    id: Name | None = None
    jobs: Annotated[list[Name], msgspec.Meta(max_length=MAX_WATCHED_JOBS)] = []
    firehose: bool = False
    logs: bool = True
    type: Filter | None = None
    status: Filter | None = None
    after: int | None = None


_decoder = msgspec.json.Decoder(Subscribe)


class _Session:
    """One WebSocket: its subscriptions (each a task pumping frames), one outbox, one sender."""

    def __init__(self, socket: WebSocket[Any, Any, Any], live: Live, auth: Auth, buffer: int):
        self._socket = socket
        self._live = live
        self._auth = auth
        self._client = client_of(socket.scope)
        self._token_scope = scope_of(socket.scope)  # (auth.py)
        self._outbox: asyncio.Queue[bytes | None] = asyncio.Queue(buffer)
        self._subscriptions: dict[str, asyncio.Task[None]] = {}

    async def serve(self) -> None:
        send_task = asyncio.create_task(self._sender())
        try:
            while True:
                try:
                    message = await self._socket.receive()
                except WebSocketDisconnect:
                    return
                if message["type"] == "websocket.disconnect":
                    return
                raw = cast("str | bytes", message.get("text") or message.get("bytes") or b"")  # (JSON, text or binary)
                try:
                    request = _decoder.decode(raw)
                except msgspec.DecodeError as exc:  # (a ValidationError is one)
                    await self._error(f"bad message: {str(exc)[:200]}")
                    continue
                await self._on(request)
        finally:
            for task in self._subscriptions.values():
                task.cancel()
                self._auth.stream_closed(self._client)
            send_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.gather(send_task, *self._subscriptions.values(), return_exceptions=True)

    async def _on(self, request: Subscribe) -> None:
        name = request.id or ("firehose" if request.firehose else ",".join(sorted(request.jobs)))
        if request.op == "unsubscribe":
            task = self._subscriptions.pop(name, None)
            if task is not None:
                task.cancel()
                self._auth.stream_closed(self._client)
            return
        if request.op != "subscribe":
            await self._error(f"unknown op {request.op!r}")
            return
        if any(not is_valid_job_id(j) for j in request.jobs) or (not request.jobs and not request.firehose):
            await self._error("subscribe to valid job ids or to the firehose")
            return
        outside = subscription_refusal(self._token_scope, request.jobs, request.firehose)
        if outside is None and self._token_scope is not None and self._token_scope.lists:
            outside = await self._unowned(request.jobs)
        if outside is not None:
            await self._error(outside)
            return
        if name not in self._subscriptions and len(self._subscriptions) >= MAX_WS_SUBSCRIPTIONS:
            await self._error(f"at most {MAX_WS_SUBSCRIPTIONS} subscriptions per connection")
            return
        try:
            wide = WideFilter.parse(request.type, request.status) if request.firehose else None
        except ValueError as exc:
            await self._error(str(exc))
            return
        if name in self._subscriptions:  # (a new subscription in its place: the same stream as counted)
            self._subscriptions.pop(name).cancel()
        elif not self._auth.stream_opened(self._client):  # (each subscription is a stream against the client's cap)
            await self._error(f"at most {self._auth.max_streams} open streams per client")
            return
        frames = frames_of(multiplexed(self._live, frozenset(request.jobs), wide, request.logs,
                                       str(request.after) if request.after is not None else None))
        self._subscriptions[name] = asyncio.create_task(self._pump(name, frames))

    async def _unowned(self, watched: list[str]) -> str | None:
        """Why an owner's token may not follow these jobs (one is not the owner's), if so."""
        for job_id in watched:
            try:
                check_visible(self._socket.scope, await self._live.reader.find(job_id))
            except JobError:
                return "no such job"  # (or none that can be told now: no stream of it)
        return None

    async def _pump(self, name: str, frames: AsyncIterator[bytes]) -> None:
        async for frame in frames:
            event, seq, data = sse.parse_frame(frame)
            if event is None or data is None:
                continue
            kind = "event" if event not in ("snapshot", "reset") else event
            message = b'{"sub":' + msgspec.json.encode(name) + b',"type":"' + kind.encode() + b'","seq":' + \
                (str(seq).encode() if seq is not None else b"null") + b',"kind":"' + event.encode() + b'","data":' + data + b"}"
            try:
                self._outbox.put_nowait(message)
            except asyncio.QueueFull:
                # Too slow: what is queued is dropped and the connection closed (resume with after).
                while not self._outbox.empty():
                    self._outbox.get_nowait()
                self._outbox.put_nowait(None)
                return

    async def _sender(self) -> None:
        while True:
            message = await self._outbox.get()
            if message is None:
                await self._socket.close(code=1013, reason="too slow; reconnect and resume with after")
                return
            async with asyncio.timeout(10):
                await self._socket.send_text(message.decode())  # (text frames: a browser's e.data is a string)

    async def _error(self, detail: str) -> None:
        await self._socket.send_json({"type": "error", "detail": detail})


@websocket("/ws")
async def ws_endpoint(socket: WebSocket[Any, Any, Any], live: NamedDependency[Live], auth: NamedDependency[Auth],
                      settings: NamedDependency[GatewaySettings]) -> None:
    # (its Origin and Host were checked before the handshake: http/guard.py)
    await socket.accept()
    await _Session(socket, live, auth, settings.stream_buffer).serve()
