"""No priority starves: under a flood of high-priority jobs, a waiting low-priority job still starts
within a share period (JOBLINE_PRIORITY_SHARE_S), not after the flood."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from nats.js import JetStreamContext

from .helpers import Stack, wait_for_job_type
from .oracle import read_timeline
from .test_queues import ends

STACK: dict[str, Any] = dict(with_logsink=False, processor={"concurrency": 1, "priority_share_s": 0.5})


async def test_a_low_priority_job_starts_during_a_flood_of_high_ones(stack: Stack, js: JetStreamContext) -> None:
    await wait_for_job_type(js, stack.names, "demo")
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
        assert (await client.post("/api/queues/demo/pause")).status_code == 200
        job = {"type": "demo", "params": {"steps": ["S"], "step_seconds": 0.1, "ticks_per_step": 1}}
        low = (await client.post("/api/jobs", json={**job, "priority": 0})).json()["id"]
        answers = await asyncio.gather(*(client.post("/api/jobs", json={**job, "priority": 9}) for _ in range(40)))
        high = [a.json()["id"] for a in answers]
        assert (await client.post("/api/queues/demo/resume")).status_code == 200
        assert set(await ends(client, [low, *high], timeout=120)) == {"completed"}
    starts = {}
    for job_id in [low, *high]:
        starts[job_id] = next(r.seq for r in await read_timeline(js, stack.names, job_id) if r.kind == "started")
    position = sorted(starts.values()).index(starts[low])
    # 40 jobs of ~0.15 s behind one slot take ~6 s; the share lets the low one in within ~0.5 s.
    assert 0 < position < 20, position
