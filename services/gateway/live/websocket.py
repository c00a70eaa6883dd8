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
from typing import Annotated, Any, cast

import msgspec
from litestar import WebSocket, websocket
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect

from jobline.contract.names import is_valid_job_id

from ..http.auth import Auth, client_of
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


@websocket("/ws")
async def ws_endpoint(socket: WebSocket[Any, Any, Any], live: NamedDependency[Live], auth: NamedDependency[Auth],
                      settings: NamedDependency[GatewaySettings]) -> None:
    # (its Origin and Host were checked before the handshake: http/guard.py)
    client = client_of(socket.scope)
    await socket.accept()
    outbox: asyncio.Queue[bytes | None] = asyncio.Queue(settings.stream_buffer)
    subscriptions: dict[str, asyncio.Task[None]] = {}

    async def pump(name: str, frames: Any) -> None:
        async for frame in frames:
            event, seq, data = sse.parse_frame(frame)
            if event is None or data is None:
                continue
            kind = "event" if event not in ("snapshot", "reset") else event
            message = b'{"sub":' + msgspec.json.encode(name) + b',"type":"' + kind.encode() + b'","seq":' + \
                (str(seq).encode() if seq is not None else b"null") + b',"kind":"' + event.encode() + b'","data":' + data + b"}"
            try:
                outbox.put_nowait(message)
            except asyncio.QueueFull:
                # Too slow: what is queued is dropped and the connection closed (resume with after).
                while not outbox.empty():
                    outbox.get_nowait()
                outbox.put_nowait(None)
                return

    async def sender() -> None:
        while True:
            message = await outbox.get()
            if message is None:
                await socket.close(code=1013, reason="too slow; reconnect and resume with after")
                return
            async with asyncio.timeout(10):
                await socket.send_text(message.decode())  # (text frames: a browser's e.data is a string)

    async def error(detail: str) -> None:
        await socket.send_json({"type": "error", "detail": detail})

    send_task = asyncio.create_task(sender())
    try:
        while True:
            try:
                message = await socket.receive()
            except WebSocketDisconnect:
                return
            if message["type"] == "websocket.disconnect":
                return
            raw = cast("str | bytes", message.get("text") or message.get("bytes") or b"")  # (JSON, text or binary)
            try:
                request = _decoder.decode(raw)
            except msgspec.DecodeError as exc:  # (a ValidationError is one)
                await error(f"bad message: {str(exc)[:200]}")
                continue
            name = request.id or ("firehose" if request.firehose else ",".join(sorted(request.jobs)))
            if request.op == "unsubscribe":
                task = subscriptions.pop(name, None)
                if task is not None:
                    task.cancel()
                    auth.stream_closed(client)
                continue
            if request.op != "subscribe":
                await error(f"unknown op {request.op!r}")
                continue
            if any(not is_valid_job_id(j) for j in request.jobs) or (not request.jobs and not request.firehose):
                await error("subscribe to valid job ids or to the firehose")
                continue
            if name not in subscriptions and len(subscriptions) >= MAX_WS_SUBSCRIPTIONS:
                await error(f"at most {MAX_WS_SUBSCRIPTIONS} subscriptions per connection")
                continue
            try:
                wide = WideFilter.parse(request.type, request.status) if request.firehose else None
            except ValueError as exc:
                await error(str(exc))
                continue
            if name in subscriptions:  # (a new subscription in its place: the same stream as counted)
                subscriptions.pop(name).cancel()
            elif not auth.stream_opened(client):  # (each subscription is a stream against the client's cap)
                await error(f"at most {auth.max_streams} open streams per client")
                continue
            frames = frames_of(multiplexed(live, frozenset(request.jobs), wide, request.logs,
                                           str(request.after) if request.after is not None else None))
            subscriptions[name] = asyncio.create_task(pump(name, frames))
    finally:
        for task in subscriptions.values():
            task.cancel()
            auth.stream_closed(client)
        send_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.gather(send_task, *subscriptions.values(), return_exceptions=True)

