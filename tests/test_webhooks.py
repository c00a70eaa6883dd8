"""Webhooks (Standard Webhooks): signed delivery, retries recorded as events, SSRF refusals."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext

from jobline.contract.events import WebhookAttempted
from jobline.contract.names import Names

from .helpers import Stack, another_conductor, eventually
from .oracle import read_timeline

KEY = b"0123456789abcdef0123456789abcdef"
SECRETS = ("whsec_" + base64.b64encode(KEY).decode(), "old-secret-during-rotation")


@dataclass
class Receiver:
    """An HTTP receiver on 127.0.0.1 that answers with the statuses it is given, in turn."""

    statuses: list[int]
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readline()
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        assert request.startswith(b"POST /hook")
        self.requests.append((headers, body))
        status = self.statuses.pop(0) if self.statuses else 200
        extra = "Location: http://127.0.0.1:1/elsewhere\r\n" if 300 <= status < 400 else ""
        writer.write(f"HTTP/1.1 {status} X\r\n{extra}Content-Length: 2\r\nConnection: close\r\n\r\nok".encode())
        await writer.drain()
        writer.close()
        self.arrived.set()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver(statuses=[])
    server = await asyncio.start_server(hook.handle, "127.0.0.1", 0)
    hook.port = server.sockets[0].getsockname()[1]
    try:
        yield hook
    finally:
        server.close()


# The services this module's tests run against (conftest.py's `stack`).
STACK: dict[str, Any] = dict(with_logsink=False, gateway={
        "webhook_secrets": SECRETS, "webhook_allow": ("127.0.0.1",)}, conductor={"webhooks": {
        "backoff_s": 0.1, "max_attempts": 4},
    })



async def attempts(js: JetStreamContext, names: Names, job_id: str, final: bool = True) -> list[WebhookAttempted]:
    found: list[WebhookAttempted] = []

    async def done() -> bool:
        found[:] = [r.event for r in await read_timeline(js, names, job_id) if isinstance(r.event, WebhookAttempted)]
        return bool(found) and (found[-1].final or not final)

    await eventually(done, timeout=15, what="webhook attempts")
    return found


def verify(headers: dict[str, str], body: bytes) -> None:
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = {
        "v1," + base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode(),
        "v1," + base64.b64encode(hmac.new(SECRETS[1].encode(), signed, hashlib.sha256).digest()).decode(),
    }
    assert set(headers["webhook-signature"].split(" ")) == expected


async def test_a_job_end_is_delivered_signed_with_both_rotation_secrets(
    client: httpx.AsyncClient, js: JetStreamContext, stack: Stack, receiver: Receiver
) -> None:
    url = f"http://127.0.0.1:{receiver.port}/hook"
    job_id = (await client.post("/api/jobs", json={"type": "noop", "webhook_url": url})).json()["id"]
    found = await attempts(js, stack.names, job_id)
    assert [(a.attempt, a.delivered, a.status) for a in found] == [(1, True, 200)]
    headers, body = receiver.requests[0]
    verify(headers, body)
    payload = json.loads(body)
    assert payload["type"] == "job.completed" and payload["data"]["id"] == job_id
    assert headers["webhook-id"] == f"job_{job_id}_completed"
    state = (await client.get(f"/api/jobs/{job_id}")).json()
    assert state["webhook"]["delivered"] is True and state["status"] == "completed"


async def test_failures_are_retried_with_backoff_and_each_attempt_is_recorded(
    client: httpx.AsyncClient, js: JetStreamContext, stack: Stack, receiver: Receiver
) -> None:
    receiver.statuses = [500, 503]
    url = f"http://127.0.0.1:{receiver.port}/hook"
    job_id = (await client.post("/api/jobs", json={"type": "noop", "webhook_url": url})).json()["id"]
    found = await attempts(js, stack.names, job_id)
    assert [(a.attempt, a.status, a.delivered, a.final) for a in found] == [
        (1, 500, False, False), (2, 503, False, False), (3, 200, True, True)]
    assert len({h["webhook-id"] for h, _ in receiver.requests}) == 1, "one id for every attempt"


async def test_redirects_are_not_followed(client: httpx.AsyncClient, js: JetStreamContext, stack: Stack,
                                          receiver: Receiver) -> None:
    receiver.statuses = [302, 302, 302, 302]
    job_id = (await client.post("/api/jobs", json={"type": "noop",
                                                   "webhook_url": f"http://127.0.0.1:{receiver.port}/hook"})).json()["id"]
    found = await attempts(js, stack.names, job_id)
    assert len(found) == 4 and not any(a.delivered for a in found) and found[-1].final
    assert "redirects are not followed" in (found[0].error or "")
    assert len(receiver.requests) == 4


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/hook", "http://192.168.0.1/", "http://[::1]:80/",
    "ftp://127.0.0.1/hook", "http://metadata.google.internal/", "http://user:pw@127.0.0.1/hook", "not a url",
    "http://127.0.0.2:1/hook", "",
    # An internal IPv4 address in IPv6 disguise: IPv4-compatible, NAT64, 6to4, IPv4-mapped.
    "http://[::127.0.0.2]/hook", "http://[64:ff9b::a9fe:a9fe]/", "http://[2002:a9fe:a9fe::1]/", "http://[::ffff:10.0.0.1]/",
    # URLs that once made a 500: a port out of range or not a number, a label over 63 characters.
    "http://127.0.0.1:99999/hook", "http://127.0.0.1:http/hook", f"http://{'a' * 300}.example/hook",
])
async def test_unsafe_targets_are_refused_at_submit_time(client: httpx.AsyncClient, js: JetStreamContext,
                                                          stack: Stack, url: str) -> None:
    before = (await js.stream_info(stack.names.jobs_stream)).state.last_seq
    response = await client.post("/api/jobs", json={"type": "noop", "webhook_url": url})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["key"] == "webhook_url"
    assert (await js.stream_info(stack.names.jobs_stream)).state.last_seq == before


async def test_two_conductor_replicas_deliver_each_job_end_once(
    client: httpx.AsyncClient, stack: Stack, js: JetStreamContext, receiver: Receiver
) -> None:
    async with another_conductor(stack):
        url = f"http://127.0.0.1:{receiver.port}/hook"
        ids = [(await client.post("/api/jobs", json={"type": "noop", "webhook_url": url})).json()["id"]
               for _ in range(10)]
        for job_id in ids:
            await attempts(js, stack.names, job_id)

        async def all_arrived() -> bool:
            return len(receiver.requests) >= len(ids)

        await eventually(all_arrived, what="every webhook")
    webhook_ids = [headers["webhook-id"] for headers, _ in receiver.requests]
    assert sorted(webhook_ids) == sorted(f"job_{i}_completed" for i in ids), "a delivery was made twice or lost"


async def test_every_submission_route_refuses_a_bad_webhook_url_naming_it(client: httpx.AsyncClient,
                                                                        js: JetStreamContext, stack: Stack) -> None:
    before = (await js.stream_info(stack.names.jobs_stream)).state.last_seq
    job = {"type": "noop", "webhook_url": "http://127.0.0.1:99999/hook"}
    answers = {
        "jobs": (await client.post("/api/jobs", json=job), "webhook_url"),
        "batches": (await client.post("/api/batches", json={"jobs": [{"type": "noop"}, job]}), "jobs[1].webhook_url"),
        "flows": (await client.post("/api/flows", json={"job": job, "children": [{"job": {"type": "noop"}}]}),
                  "job.webhook_url"),
        "schedules": (await client.post("/api/schedules", json={"name": "hooked", "cron": "@daily", "job": job}),
                      "job.webhook_url"),
        "forms": (await client.post("/api/jobs", data={"type": "noop", "webhook_url": job["webhook_url"]},
                                    files={"none": ("", b"", "text/plain")}), "webhook_url"),
    }
    for route, (answer, key) in answers.items():
        assert answer.status_code == 422, (route, answer.status_code, answer.text[:300])
        assert answer.json()["errors"][0]["key"] == key, (route, answer.json())
    assert (await js.stream_info(stack.names.jobs_stream)).state.last_seq == before
