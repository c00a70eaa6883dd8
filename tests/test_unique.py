"""One job per key (`unique_key`), decided on the broker: 50 concurrent submissions of one key through
two gateways make one job; the key is free once its job ends; throttle answers the window's job;
debounce replaces a waiting job and starts the last one a window after its submission (timed from
the events' own timestamps)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from nats.js import JetStreamContext

from jobline.contract.names import Names
from jobline.jobs.unique import STORING_GRACE_S, Hold, kv_key
from jobline.runtime.embedded_nats import EmbeddedNats

from .helpers import eventually, read_sse
from .processes import System

pytestmark = pytest.mark.slow
TASKS = '''
import asyncio, pathlib
from jobline.processor import JobContext
from jobline.processor.registry import task

@task("transcode")
async def transcode(ctx: JobContext) -> dict:
    release = ctx.params.get("release")
    while release and not pathlib.Path(release).exists():  # the test releases it by writing the file
        await asyncio.sleep(0.02)
    return {"clip": ctx.params.get("clip")}
'''


@pytest.fixture
async def gateways(nats_server: EmbeddedNats, names: Names, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    system = System(nats_server.url, names, tmp_path, task_modules={"uniquetasks": TASKS})
    try:
        await system.start_all(processors=1, logsink=False, history=True, conductors=0, gateway=False)
        await system.start("gateway-a")
        first = system.url
        await system.start("gateway-b")
        yield first, system.url
    finally:
        await system.stop()


async def state(http: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    answer = await http.get(f"/api/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def test_one_job_per_key_across_two_gateways(gateways: tuple[str, str], tmp_path: Path) -> None:
    release = tmp_path / "release"
    spec = {"type": "transcode", "params": {"clip": 42, "release": str(release)}, "unique_key": "clip-42"}
    async with httpx.AsyncClient(base_url=gateways[0], timeout=30) as a, \
            httpx.AsyncClient(base_url=gateways[1], timeout=30) as b:
        answers = await asyncio.gather(*((a if i % 2 else b).post("/api/jobs", json=spec) for i in range(50)))
        codes = sorted(r.status_code for r in answers)
        assert codes == [200] * 49 + [202], codes
        ids = {r.json()["id"] for r in answers}
        assert len(ids) == 1, ids
        (job_id,) = ids
        held = next(r for r in answers if r.status_code == 200)
        assert held.headers["unique-key-held"] == "true" and held.headers["location"] == f"/api/jobs/{job_id}"
        # Another type, or another key, is another job.
        other = await a.post("/api/jobs", json={**spec, "unique_key": "clip-43", "params": {"clip": 43}})
        assert other.status_code == 202 and other.json()["id"] != job_id
        release.write_text("go")
        events = await read_sse(a, f"/api/jobs/{job_id}/events")
        assert events[-1].event == "completed"
        # Ended: the key is free (as soon as this gateway has seen the end).
        again = await b.post("/api/jobs", json=spec)
        assert again.status_code == 202, again.text
        assert again.json()["id"] != job_id


async def test_throttle_answers_the_windows_job_and_debounce_starts_the_last(gateways: tuple[str, str]) -> None:
    async with httpx.AsyncClient(base_url=gateways[0], timeout=30) as a, \
            httpx.AsyncClient(base_url=gateways[1], timeout=30) as b:
        throttled = {"type": "transcode", "params": {"clip": 1}, "unique_key": "report", "unique_mode": "throttle",
                     "unique_window_s": 2.0}
        first = await a.post("/api/jobs", json=throttled)
        assert first.status_code == 202
        first_id = first.json()["id"]
        await read_sse(a, f"/api/jobs/{first_id}/events")  # (ended: throttle holds it all the same)
        inside = await b.post("/api/jobs", json=throttled)
        assert inside.status_code == 200 and inside.json()["id"] == first_id
        made_at = (await state(a, first_id))["created_at"]
        news: list[tuple[float, str]] = []

        async def a_new_window() -> bool:
            answer = await a.post("/api/jobs", json=throttled)
            if answer.status_code == 202:
                news.append((answer.json()["id"], 0.0))
            return answer.status_code == 202

        await eventually(a_new_window, timeout=10, what="a job of the next window")
        assert (await state(a, news[0][0]))["created_at"] >= made_at + 2.0  # (the window, by the job's own times)

        debounced = {"type": "transcode", "unique_key": "search-index", "unique_mode": "debounce",
                     "unique_window_s": 1.5}
        one = await a.post("/api/jobs", json={**debounced, "params": {"clip": "one"}})
        two = await b.post("/api/jobs", json={**debounced, "params": {"clip": "two"}})
        assert one.status_code == two.status_code == 202 and one.json()["status"] == "scheduled"
        one_id, two_id = one.json()["id"], two.json()["id"]
        replaced = await state(a, one_id)
        assert replaced["status"] == "cancelled" and two_id in (replaced["error"] or ""), replaced
        events = await read_sse(a, f"/api/jobs/{two_id}/events")
        assert events[-1].event == "completed"
        ran = await state(a, two_id)
        assert ran["params"] == {"clip": "two"} and ran["result"] == {"clip": "two"}
        timeline = (await a.get(f"/api/jobs/{two_id}/timeline")).json()["events"]
        submitted = next(e["event"]["ts"] for e in timeline if e["event"]["kind"] == "scheduled")
        assert submitted + 1.5 <= ran["run_at"] < submitted + 2.5  # (the broker's schedules have whole seconds)
        assert ran["started_at"] >= ran["run_at"] - 0.05  # (not before the window's end)


BAD = [
    ({"unique_mode": "throttle"}, "unique_key"),
    ({"unique_key": "k", "unique_window_s": 5}, "unique_window_s"),
    ({"unique_key": "k", "unique_mode": "throttle"}, "unique_window_s"),
    ({"unique_key": "k", "unique_mode": "debounce", "unique_window_s": 1, "delay_s": 5}, "delay_s"),
    ({"unique_key": "", "unique_mode": "active"}, "unique_key"),
    ({"unique_key": "a\nb"}, "unique_key"),
]


async def test_bad_unique_keys_are_refused(gateways: tuple[str, str]) -> None:
    async with httpx.AsyncClient(base_url=gateways[0], timeout=30) as a:
        for body, key in BAD:
            refused = await a.post("/api/jobs", json={"type": "transcode", **body})
            assert refused.status_code == 422, (body, refused.text)
            assert refused.json()["errors"][0]["key"] == key, (body, refused.json())
        assert (await a.post("/api/jobs", json={"type": "transcode", "unique_key": "k",
                                                "unique_mode": "sometimes"})).status_code == 400
        in_batch = await a.post("/api/batches", json={"jobs": [{"type": "transcode", "unique_key": "k"}]})
        assert in_batch.status_code == 422 and in_batch.json()["errors"][0]["key"] == "jobs[0].unique_key"


async def test_the_client_and_the_cli_submit_with_a_unique_key(gateways: tuple[str, str], tmp_path: Path) -> None:
    import subprocess
    import sys

    from jobline.client import AsyncClient

    release = tmp_path / "release"
    async with AsyncClient(gateways[0]) as jobline:
        first = await jobline.submit("transcode", {"release": str(release)}, unique_key="upload-7")
        again = await jobline.submit("transcode", {"release": str(release)}, unique_key="upload-7")
        assert again.id == first.id  # (each call has its own Idempotency-Key: the unique key decides)

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "jobline.cli.main", "submit", "transcode", *args,
                                   "--url", gateways[1]], capture_output=True, text=True, timeout=60)

        answer = await asyncio.to_thread(cli, "-p", f"release={release}", "--unique-key", "upload-7")
        assert answer.returncode == 0 and first.id in answer.stdout, answer.stdout + answer.stderr
        release.write_text("go")
        assert (await first.wait(timeout=20)).status == "completed"


async def test_a_key_taken_by_a_gateway_that_died_before_storing_its_job_is_free_after_the_grace(
        gateways: tuple[str, str], js: JetStreamContext, names: Names) -> None:
    """What a gateway killed between taking a key and storing its job leaves behind — a hold whose
    job is nowhere — frees the key once STORING_GRACE_S has passed since it was taken (and not before:
    its request may still be storing it)."""
    kv = await js.key_value(names.unique_bucket)
    now = time.time()
    for key, job_id, at in (("died-long-ago", "never-stored-1", now - STORING_GRACE_S - 1),
                            ("died-just-now", "never-stored-2", now)):
        await kv.put(kv_key("transcode", key), msgspec.json.encode(Hold(job_id=job_id, at=at)))
    async with httpx.AsyncClient(base_url=gateways[1], timeout=30) as client:
        freed = await client.post("/api/jobs", json={"type": "transcode", "unique_key": "died-long-ago"})
        assert freed.status_code == 202 and freed.json()["id"] != "never-stored-1", freed.text
        held = await client.post("/api/jobs", json={"type": "transcode", "unique_key": "died-just-now"})
        assert held.status_code == 200 and held.json()["id"] == "never-stored-2", held.text
