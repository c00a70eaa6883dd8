"""Bad input and protocol edges, as third-party clients and raw sockets send them: every malformed
request is a 4xx problem, cross-site writes and foreign hosts are refused, streams end properly."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .helpers import Stack, eventually, read_sse, submit

FAST_DEMO = {"steps": ["A", "B"], "step_seconds": 0.05, "ticks_per_step": 2}


# The services this module's tests run against (conftest.py's `stack`).
STACK: dict[str, Any] = dict(gateway={"max_streams_per_client": 5, "upload_idle_timeout_s": 1.0})


def is_problem(response: httpx.Response, status: int) -> bool:
    return response.status_code == status and response.headers["content-type"].startswith("application/problem+json") \
        and response.json()["status"] == status


async def raw_request(stack: Stack, request: bytes, read_for: float = 2.0) -> bytes:
    """Send bytes on a socket; what came back within `read_for` seconds (or until closed)."""
    host, port = stack.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    received = b""
    try:
        async with asyncio.timeout(read_for):
            while chunk := await reader.read(65536):
                received += chunk
    except TimeoutError:
        pass
    writer.close()
    return received


# --- malformed bodies ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/api/jobs", "/api/session"])
async def test_malformed_bodies_are_400_problems_never_500(client: httpx.AsyncClient, path: str) -> None:
    deep = b'{"type": "noop", "params": ' + b'{"a": ' * 10_000 + b"1" + b"}" * 10_000 + b"}"
    bodies = [deep, b'{"type": "noop", "params": {"a": "\xff\xfe"}}', b'{"type": ', b"[]", b"\xff" * 10,
              b'{"token": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"]
    for body in bodies:
        response = await client.post(path, content=body, headers={"content-type": "application/json"})
        assert is_problem(response, 400), (path, body[:40], response.status_code, response.text[:200])


# --- cross-site requests and foreign hosts ------------------------------------------------------------
async def test_cross_site_writes_and_foreign_hosts_are_refused(client: httpx.AsyncClient, stack: Stack) -> None:
    body = json.dumps({"type": "noop"})
    plain = await client.post("/api/jobs", content=body, headers={"content-type": "text/plain"})
    assert is_problem(plain, 415)  # a "simple" cross-site request needs no preflight: refused
    form = await client.post("/api/jobs", content="type=noop",
                             headers={"content-type": "application/x-www-form-urlencoded"})
    assert is_problem(form, 415)
    foreign = await client.post("/api/jobs", json={"type": "noop"}, headers={"Origin": "http://evil.example"})
    assert is_problem(foreign, 403)
    own = await client.post("/api/jobs", json={"type": "noop"}, headers={"Origin": stack.url})
    assert own.status_code == 202
    cancel = await client.post(f"/api/jobs/{own.json()['id']}/cancel", headers={"Origin": "https://" + stack.url[7:]})
    assert is_problem(cancel, 403)  # same host and port, another scheme: another origin
    host = await client.get("/api/types", headers={"Host": "attacker.example:8400"})
    assert is_problem(host, 400)  # DNS rebinding: a loopback gateway answers only for its own names
    assert (await client.get("/api/types", headers={"Host": "localhost:1234"})).status_code == 200

    ws = stack.url.replace("http://", "ws://") + "/ws"
    for headers in ({"Host": "attacker.example:8400", "Origin": "http://attacker.example:8400"},
                    {"Origin": "https://" + stack.url[7:]}, {"Origin": "evil://" + stack.url[7:]}):
        with pytest.raises((ConnectionClosed, InvalidStatus)):
            async with connect(ws, additional_headers=headers) as socket:
                await socket.send(json.dumps({"op": "subscribe", "firehose": True}))
                await asyncio.wait_for(socket.recv(), 5)


async def test_a_websocket_subscription_id_is_bounded(stack: Stack) -> None:
    ws = stack.url.replace("http://", "ws://") + "/ws"
    async with connect(ws, max_size=2**24) as socket:
        await socket.send(json.dumps({"op": "subscribe", "id": "x" * 1_000_000, "firehose": True}))
        reply = await asyncio.wait_for(socket.recv(), 5)
        assert len(reply) < 1000 and json.loads(reply)["type"] == "error"


# --- uploads ---------------------------------------------------------------------------------------
async def test_uploads_refuse_forms_and_empty_bodies_and_time_out_a_stalled_client(
        client: httpx.AsyncClient, stack: Stack) -> None:
    form = await client.post("/api/uploads", files={"file": ("clip.mp4", b"not a video", "video/mp4")})
    assert is_problem(form, 415)
    empty = await client.post("/api/uploads", content=b"", headers={"content-type": "video/mp4"})
    assert is_problem(empty, 400)
    stored = await client.post("/api/uploads", params={"filename": "a.txt"}, content=b"hello",
                               headers={"content-type": "text/plain"})
    assert stored.status_code == 201
    described = await client.get(stored.headers["location"])
    assert described.status_code == 200 and described.json() == stored.json()
    assert is_problem(await client.get("/api/uploads/01nosuchupload"), 404)
    stalled = await raw_request(stack, b"POST /api/uploads HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                                       b"Content-Length: 1000\r\n\r\nonly a little", read_for=10)
    assert stalled.startswith(b"HTTP/1.1 408"), stalled[:200]


# --- streams ----------------------------------------------------------------------------------------
async def test_sse_to_an_http_1_0_client_is_not_chunked(client: httpx.AsyncClient, stack: Stack) -> None:
    job_id = await submit(client, "noop")
    await read_sse(client, f"/api/jobs/{job_id}/events")
    answer = await raw_request(stack, f"GET /api/jobs/{job_id}/events HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200"), head
    assert b"transfer-encoding" not in head.lower(), head
    assert body.startswith(b"retry:") and b"event: snapshot" in body


async def test_following_an_ended_jobs_logs_ends_with_its_end_and_a_reconnect_gets_204(
        client: httpx.AsyncClient) -> None:
    job_id = await submit(client, "demo", FAST_DEMO)
    await read_sse(client, f"/api/jobs/{job_id}/events")
    events = await read_sse(client, f"/api/jobs/{job_id}/logs?follow=1")
    assert [e.event for e in events] == ["logged"] * 4 + ["completed"]
    async with aconnect_sse(client, "GET", f"/api/jobs/{job_id}/logs?follow=1",
                            headers={"Last-Event-ID": events[-1].id or ""}) as source:
        assert source.response.status_code == 204


async def test_service_log_streams_free_their_slot_when_the_client_goes(client: httpx.AsyncClient) -> None:
    logging.getLogger("jobline.test").warning("a record to stream")

    async def opens() -> bool:
        async with aconnect_sse(client, "GET", "/api/logs/stream", headers={"Last-Event-ID": "1"}) as source:
            if source.response.status_code == 429:
                return False  # (a slot still held: freed a moment after its client went, or never)
            assert source.response.status_code == 200
            async for _ in source.aiter_sse():
                break  # then go away mid-stream
        return True

    for _ in range(12):  # more than the 5 streams a client may hold at once
        await eventually(opens, 5, "a stream slot to be free")


async def test_error_records_with_tracebacks_reach_the_service_log_stream(client: httpx.AsyncClient) -> None:
    try:
        raise ValueError("something broke on purpose")
    except ValueError:
        logging.getLogger("jobline.gateway.test").exception("a failure with its traceback")
    async with asyncio.timeout(10), aconnect_sse(client, "GET", "/api/logs/stream?level=error") as source:
        async for sse in source.aiter_sse():
            message = json.loads(sse.data)["message"] if sse.event == "log" else ""
            if "a failure with its traceback" in message:
                assert "ValueError: something broke on purpose" in message
                break


async def test_options_lists_every_method_of_a_path(client: httpx.AsyncClient) -> None:
    response = await client.options("/api/jobs")
    allowed = {m.strip() for m in response.headers.get("allow", "").split(",")}
    assert {"GET", "POST", "OPTIONS"} <= allowed, response.headers


async def test_query_values_out_of_bounds_are_400_naming_the_field(client: httpx.AsyncClient) -> None:
    for path, key in [("/api/jobs?before=-1", "before"), ("/api/jobs?status=running,", "status"),
                      ("/api/jobs/x1/state?at=seq:1.5", "at"), ("/api/jobs/x1/state?at=nan", "at"),
                      ("/api/jobs/x1/events?from=-1", "from")]:
        response = await client.get(path)
        assert is_problem(response, 400), (path, response.status_code, response.text[:200])
        assert response.json()["errors"][0]["key"] == key, (path, response.json())


async def test_a_stream_token_without_tokens_configured_is_a_409(client: httpx.AsyncClient) -> None:
    assert is_problem(await client.post("/api/stream-tokens"), 409)


# --- names, paths and filters that once made a 500 or matched too much ------------------------------
async def test_control_characters_in_paths_and_names_are_refused(client: httpx.AsyncClient, stack: Stack) -> None:
    for raw in (b"GET /%00 HTTP/1.1", b"GET /jobline.js%00.html HTTP/1.1", b"GET /api/jobs/x%0A HTTP/1.1"):
        answer = await raw_request(stack, raw + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400"), (raw, answer[:200])
    # A name pattern ending in `$` accepts a trailing newline: every name is matched whole.
    schedule = await client.post("/api/schedules", json={"name": "x\n", "cron": "@daily", "job": {"type": "noop"}})
    assert is_problem(schedule, 422) and schedule.json()["errors"][0]["key"] == "name"
    flow = await client.post("/api/flows", json={"job": {"type": "noop"}, "children": [{"name": "a\n",
                                                                                         "job": {"type": "noop"}}]})
    assert is_problem(flow, 422) and flow.json()["errors"][0]["key"] == "children[0].name"
    for path, key in [("/api/jobs?type=demo%0A", "type"), ("/api/stats/activity?type=demo%0A", "type"),
                      ("/api/jobs?error=%00", "error"),
                      ("/api/jobs?created_after=inf", "created_after"), ("/api/jobs?created_before=-inf", "created_before"),
                      ("/api/jobs?finished_after=nan", "finished_after"), ("/api/events?type=", "type"),
                      ("/api/events?status=", "status"), ("/api/jobs/x1/logs?follow=true&limit=0", "limit"),
                      ("/api/jobs/x1/logs?follow=1&after=-1", "after")]:
        response = await client.get(path)
        assert is_problem(response, 400), (path, response.status_code, response.text[:200])
        assert response.json()["errors"][0]["key"] == key, (path, response.json())


async def test_a_flow_takes_what_a_job_takes_and_refuses_what_it_cannot_run(client: httpx.AsyncClient) -> None:
    document = (await client.get("/schema/openapi.json")).json()
    flow_job = document["components"]["schemas"]["FlowChild"]["properties"]["job"]
    assert all("delay_s" not in v["properties"] and "run_at" not in v["properties"] for v in flow_job["oneOf"])
    floats = {"job": {"type": "noop", "max_attempts": 2.0}, "children": [{"job": {"type": "noop", "max_attempts": 23.0}}]}
    assert (await client.post("/api/flows", json=floats)).status_code == 202  # as POST /api/jobs takes 23.0
    assert (await client.post("/api/jobs", json={"type": "noop", "max_attempts": 23.0})).status_code == 202
    delayed = await client.post("/api/flows", json={"job": {"type": "noop"}, "children": [{"job": {"type": "noop",
                                                                                                  "delay_s": 0}}]})
    assert is_problem(delayed, 422)


async def test_a_flow_as_deep_as_it_may_be_is_served_and_a_deeper_one_refused(client: httpx.AsyncClient) -> None:
    def chain(levels: int) -> dict[str, Any]:
        node: dict[str, Any] = {"job": {"type": "noop"}}
        for _ in range(levels - 1):
            node = {"job": {"type": "noop"}, "children": [node]}
        return {"job": {"type": "noop"}, "children": [node]}

    deepest = await client.post("/api/flows", json=chain(32))
    assert deepest.status_code == 202, deepest.text[:300]
    tree = await client.get(f"/api/flows/{deepest.json()['id']}")
    assert tree.status_code == 200
    levels, node = 0, tree.json()
    while node["children"]:
        levels, node = levels + 1, node["children"][0]
    assert levels == 32
    too_deep = await client.post("/api/flows", json=chain(33))
    assert is_problem(too_deep, 422) and "levels" in too_deep.json()["detail"]


# --- HTTP itself: HEAD, If-Range, content types ------------------------------------------------------
async def test_head_answers_like_get_without_a_body(client: httpx.AsyncClient) -> None:
    for path in ("/", "/vocabulary.js", "/api/types", "/healthz"):
        got, head = await client.get(path), await client.head(path)
        assert head.status_code == got.status_code == 200, (path, head.status_code)
        assert head.content == b"" and head.headers["content-type"] == got.headers["content-type"], path
    kind = (await client.get("/vocabulary.js")).headers["content-type"]
    assert kind.startswith("text/javascript") and kind.count("charset") == 1, kind
