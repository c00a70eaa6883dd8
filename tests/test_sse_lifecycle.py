"""SSE connections: heartbeats without ids while quiet, and nothing left behind on disconnect."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from jobline.gateway.app import Wired

from .helpers import Stack, eventually, submit

SLOW_DEMO = {"steps": ["Wait"], "step_seconds": 3.0, "ticks_per_step": 1}


# The services this module's tests run against (conftest.py's `stack`).
STACK: dict[str, Any] = dict(with_logsink=False,
                             gateway={"heartbeat_s": 0.2})


def core_of(stack: Stack) -> Wired:
    return stack.gateway.server.config.app.state.wired  # type: ignore[attr-defined, no-any-return]


async def test_a_quiet_stream_sends_heartbeat_comments_without_ids(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        job_id = await submit(client, "demo", SLOW_DEMO)
        lines: list[str] = []
        async with asyncio.timeout(10), client.stream("GET", f"/api/jobs/{job_id}/events") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache"
            async for line in response.aiter_lines():
                lines.append(line)
                if lines.count(": keepalive") >= 2 and line == "":
                    break
        assert lines[0].startswith("retry: ")
        beats = [i for i, line in enumerate(lines) if line == ": keepalive"]
        assert len(beats) >= 2
        for i in beats:  # a heartbeat is a lone comment: no id, no data around it
            assert lines[i - 1] == "" and lines[i + 1] == ""


async def test_disconnected_clients_leave_no_listener_behind(stack: Stack) -> None:
    core = core_of(stack)
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        job_id = await submit(client, "demo", SLOW_DEMO)
        for _ in range(20):
            async with asyncio.timeout(10), client.stream("GET", f"/api/jobs/{job_id}/events") as response:
                async for line in response.aiter_lines():
                    if line.startswith("event: snapshot"):
                        break
        async with asyncio.timeout(10), client.stream("GET", f"/api/jobs/{job_id}/events") as response:
            async for line in response.aiter_lines():
                if line.startswith("event: snapshot"):
                    assert core.live.hub.listener_count >= 1
                    break

    async def all_gone() -> bool:
        return core.live.hub.listener_count == 0

    await eventually(all_gone, timeout=10, what="every SSE listener to be removed")
    assert not core.live.hub.has_listeners(job_id)
