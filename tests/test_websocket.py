"""`/ws`: subscribe to jobs or the firehose over a WebSocket, resume by sequence, Origin checked."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .helpers import Stack, submit
from .oracle import read_timeline

DEMO = {"steps": ["A", "B"], "step_seconds": 0.3, "ticks_per_step": 3}


# The services this module's tests run against (conftest.py's `stack`).
STACK: dict[str, Any] = dict(with_logsink=False)



def ws_url(stack: Stack) -> str:
    return stack.url.replace("http://", "ws://") + "/ws"


async def until_end(ws: ClientConnection, job_id: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    async with asyncio.timeout(20):
        while True:
            message = json.loads(await ws.recv())
            messages.append(message)
            if message.get("type") == "event" and message["kind"] in ("completed", "failed") and \
                    message["data"]["job_id"] == job_id:
                return messages
            if message.get("type") == "snapshot" and any(
                    j["id"] == job_id and j["status"] == "completed" for j in message["data"]["jobs"]):
                return messages


async def test_a_job_subscription_carries_the_same_events_as_the_stream(
    client: httpx.AsyncClient, js: JetStreamContext, stack: Stack
) -> None:
    job_id = await submit(client, "demo", DEMO)
    async with connect(ws_url(stack)) as ws:
        await ws.send(json.dumps({"op": "subscribe", "id": "mine", "jobs": [job_id]}))
        messages = await until_end(ws, job_id)
    assert messages[0]["type"] == "snapshot" and messages[0]["sub"] == "mine"
    start = messages[0]["seq"]
    events = [(m["seq"], m["kind"]) for m in messages[1:]]
    timeline = await read_timeline(js, stack.names, job_id)
    assert events == [(r.seq, r.kind) for r in timeline if r.seq > start]

    # Resume by sequence: exactly what came after.
    middle = timeline[3].seq
    async with connect(ws_url(stack)) as ws:
        await ws.send(json.dumps({"op": "subscribe", "jobs": [job_id], "after": middle}))
        resumed = await until_end(ws, job_id)
    assert [(m["seq"], m["kind"]) for m in resumed] == [(r.seq, r.kind) for r in timeline if r.seq > middle]


async def test_firehose_subscribe_and_unsubscribe(client: httpx.AsyncClient, stack: Stack) -> None:
    async with connect(ws_url(stack)) as ws:
        await ws.send(json.dumps({"op": "subscribe", "id": "all", "firehose": True}))
        assert json.loads(await ws.recv())["type"] == "snapshot"
        job_id = await submit(client, "noop")
        seen = await until_end(ws, job_id)
        assert all(m["sub"] == "all" for m in seen) and not any(m["kind"] == "logged" for m in seen)
        await ws.send(json.dumps({"op": "unsubscribe", "id": "all"}))
        await ws.send(json.dumps({"op": "explode"}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        while reply.get("type") != "error":  # events already on their way before the unsubscribe
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert "unknown op" in reply["detail"]
        await submit(client, "noop")
        await ws.send(json.dumps({"op": "subscribe", "jobs": ["bad.id"]}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "error"


async def test_a_foreign_origin_is_refused(stack: Stack) -> None:
    with pytest.raises((ConnectionClosed, InvalidStatus)):
        async with connect(ws_url(stack), additional_headers={"Origin": "http://evil.example"}) as ws:
            await ws.send(json.dumps({"op": "subscribe", "firehose": True}))
            await asyncio.wait_for(ws.recv(), 5)
    host = stack.url.removeprefix("http://")
    async with connect(ws_url(stack), additional_headers={"Origin": f"http://{host}"}) as ws:
        await ws.send(json.dumps({"op": "subscribe", "firehose": True}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "snapshot"
