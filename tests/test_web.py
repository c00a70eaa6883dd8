"""The web UI in real headless Chromium (Debian's package, driven by Playwright's async API)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import imageio_ffmpeg
import pytest
from nats.js import JetStreamContext
from playwright.async_api import Locator, Page, expect

from jobline.contract.events import LogLineWritten
from jobline.contract.names import Names
from jobline.processor import JobContext
from jobline.processor.builtin_tasks import ReviewParams, gather, review
from jobline.processor.registry import Registry
from jobline.processor.video_tasks import STEPS, RenditionsParams, TranscodeParams, renditions, transcode
from jobline.runtime.embedded_nats import EmbeddedNats

from .browser import chromium
from .helpers import Stack, read_sse, running_stack, wait_for_job_type
from .oracle import read_timeline
from .processes import ServiceProcess, free_port, gateway_url, service_env, stop_all

pytestmark = pytest.mark.slow

registry = Registry()
HOSTILE = "<img src=x onerror=alert(1)> & <script>alert(2)</script>"
SCREENSHOTS = os.environ.get("JOBLINE_SCREENSHOTS")  # a folder: save the README's screenshots there


@registry.task("demo", steps=["Upload", "Processing", "Done"])
async def demo(ctx: JobContext) -> dict[str, bool]:
    for i, name in enumerate(["Upload", "Processing", "Done"]):
        ctx.step(name)
        ctx.log(f"{name} begins")
        for tick in range(4):
            await asyncio.sleep(float(ctx.params.get("tick", 0.05)))
            ctx.progress(i * 4 + tick + 1, 12, message=f"{name} {tick + 1}/4")
    return {"ok": True}


@registry.task("hostile")
async def hostile(ctx: JobContext) -> None:
    ctx.log(HOSTILE, level="error")


@registry.task("broken", max_attempts=1)
async def broken(ctx: JobContext) -> None:
    raise RuntimeError("broken on purpose")


registry.task("video-transcode", params=TranscodeParams, steps=STEPS)(transcode)
registry.task("gather")(gather)
registry.task("review", params=ReviewParams, steps=["Prepare", "Review", "Publish"])(review)
registry.task("video-renditions", params=RenditionsParams, steps=["Probe", "Renditions", "Playlist"])(renditions)


# The services this module's tests run against (conftest.py's `stack`).
STACK: dict[str, Any] = dict(registry=registry, with_logsink=False, conductor={"alert_check_s": 0.3})


async def open_page(url: str) -> AsyncIterator[Page]:
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1200, "height": 900})
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(url + "/")
        yield page
        assert dialogs == [], f"a dialog fired: {dialogs}"
        assert errors == [], f"page errors: {errors}"


@pytest.fixture
async def page(stack: Stack) -> AsyncIterator[Page]:
    async for opened in open_page(stack.url):
        yield opened


async def make_clip(path: Path) -> Path:
    """A 2-second 320x240 test video, made by ffmpeg."""
    ffmpeg = await asyncio.create_subprocess_exec(
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
        "-i", "testsrc=duration=2:size=320x240:rate=25", "-pix_fmt", "yuv420p", str(path))
    assert await ffmpeg.wait() == 0
    return path


async def playable_duration(video: Locator) -> float:
    """The duration of a <video> once the browser has read its metadata (an error if it cannot)."""
    return float(await video.evaluate(
        "v => new Promise((ok, bad) => { if (v.readyState >= 1) ok(v.duration); "
        "v.onloadedmetadata = () => ok(v.duration); v.onerror = () => bad(String(v.error && v.error.code)); })"))


async def submit_from_form(page: Page, job_type: str, params: dict[str, object]) -> str:
    await expect(page.locator("#job-type option", has_text=job_type)).to_have_count(1)
    await page.select_option("#job-type", job_type)
    if not await page.locator("#raw-params").evaluate("d => d.open"):
        await page.click("#raw-params summary")  # the raw JSON is the advanced option
    await page.fill("#job-params", json.dumps(params))
    await page.click("#submit")
    await expect(page).to_have_url(re.compile(r"#/jobs/"), timeout=30_000)
    return page.url.rsplit("/", 1)[1]


async def test_submit_a_demo_job_and_watch_it_reach_100_percent_with_every_step_done(page: Page) -> None:
    await submit_from_form(page, "demo", {"tick": 0.15})
    bar = page.get_by_role("progressbar", name="Job progress")
    await expect(page.locator("#steps li")).to_have_count(3)
    await expect(page.locator("#job-status")).to_have_text("running")
    if SCREENSHOTS:
        await page.screenshot(path=f"{SCREENSHOTS}/job-running.png", full_page=True)
    await expect(page.locator("#job-status")).to_have_text("completed", timeout=15_000)
    await expect(bar).to_have_attribute("aria-valuenow", "100")
    statuses = await page.locator("#steps li").evaluate_all("items => items.map(i => i.dataset.status)")
    assert statuses == ["done", "done", "done"]
    await expect(page.locator("#log li")).to_have_count(3)
    await expect(page.locator("#log")).to_contain_text("Processing begins")
    await expect(page.locator("#jobs tr")).to_have_count(1)
    await expect(page.locator("#connection")).to_have_text("live")
    if SCREENSHOTS:
        await page.goto(page.url.split("#")[0] + "#/")
        await page.screenshot(path=f"{SCREENSHOTS}/dashboard.png", full_page=True)


async def test_a_hostile_log_line_shows_as_text_and_runs_nothing(page: Page) -> None:
    await submit_from_form(page, "hostile", {})
    await expect(page.locator("#job-status")).to_have_text("completed", timeout=15_000)
    await expect(page.locator("#log li").first).to_contain_text(HOSTILE)
    assert await page.locator("#log img, #log script").count() == 0


async def test_cancel_a_running_job_from_its_page(page: Page) -> None:
    await submit_from_form(page, "demo", {"tick": 1.0})
    await expect(page.locator("#job-status")).to_have_text("running", timeout=10_000)
    await page.click("#cancel")
    await expect(page.locator("#job-status")).to_have_text("cancelled", timeout=5_000)
    await expect(page.locator("#cancel")).to_be_disabled()


async def test_a_key_held_by_a_running_job_opens_that_job_instead_of_a_second(page: Page) -> None:
    await page.click("#job-once summary")
    await page.fill("#job-unique-key", "nightly-report")  # (mode: while one with the key runs)
    first = await submit_from_form(page, "demo", {"tick": 1.0})
    await expect(page.locator("#job-status")).to_have_text(re.compile("pending|running"))
    await page.fill("#job-params", json.dumps({"tick": 0.01}))  # (the same form, the same key)
    await page.click("#submit")
    await expect(page.locator("#form-notice")).to_have_text(re.compile(f"^Not submitted: the key is held by job {first}"))
    assert page.url.endswith(f"#/jobs/{first}")
    await page.click("#cancel")  # (ended: the key is free again)
    await expect(page.locator("#job-status")).to_have_text("cancelled", timeout=5_000)
    await page.click("#submit")
    await expect(page).not_to_have_url(re.compile(f"#/jobs/{first}$"), timeout=10_000)  # a new job, opened
    await expect(page.locator("#form-notice")).to_have_text("")


async def test_approve_and_reject_a_job_that_waits_for_a_reviewer(page: Page) -> None:
    await submit_from_form(page, "review", {"title": "clip", "prepare_seconds": 0.05})
    box = page.locator("#job-signal")
    await expect(page.locator("#job-status")).to_have_text("waiting", timeout=10_000)
    await expect(box).to_be_visible()
    await expect(page.locator("#signal-title")).to_have_text("Waiting for approval")
    await expect(page.locator("#job-message")).to_have_text("waiting for signal approval")
    await page.fill("#signal-payload", json.dumps({"note": HOSTILE}))
    await page.click("#signal-approve")
    await expect(page.locator("#job-status")).to_have_text(re.compile("completed"), timeout=15_000)
    await expect(box).to_be_hidden()
    await expect(page.locator("#job-result")).to_contain_text('"published": true')
    await expect(page.locator("#job-result")).to_contain_text("onerror")  # (as text)
    # Another one, rejected: it fails saying so.
    await page.goto(page.url.split("#")[0] + "#/")
    await submit_from_form(page, "review", {"prepare_seconds": 0.05})
    await expect(box).to_be_visible(timeout=10_000)
    await page.fill("#signal-payload", "not json")
    await page.click("#signal-reject")
    await expect(page.locator("#job-error")).to_have_text("the payload is not JSON")
    await page.fill("#signal-payload", "")
    await page.click("#signal-reject")
    await expect(page.locator("#job-status")).to_have_text(re.compile("failed"), timeout=15_000)
    await expect(page.locator("#job-error")).to_contain_text("rejected by the reviewer")
    assert await page.locator("#job-result img").count() == 0


async def test_replay_a_finished_job_at_16x_and_scrub_through_it(page: Page) -> None:
    await submit_from_form(page, "demo", {"tick": 0.1})
    await expect(page.locator("#job-status")).to_have_text("completed", timeout=15_000)
    await page.click("#replay-link")
    bar = page.get_by_role("progressbar", name="Progress at this moment")
    await expect(page.locator("#replay-status")).to_have_text("pending")
    await page.fill("#replay-scrub", "500")
    now = int(await bar.get_attribute("aria-valuenow") or "0")
    assert 0 < now < 100, now
    lines_midway = await page.locator("#replay-log li").count()
    assert 0 < lines_midway < 3
    if SCREENSHOTS:
        await page.screenshot(path=f"{SCREENSHOTS}/replay.png", full_page=True)
    await page.fill("#replay-scrub", "0")
    await page.select_option("#replay-speed", "16")
    await page.click("#replay-play")
    await expect(bar).to_have_attribute("aria-valuenow", "100", timeout=3_000)  # 1.2 s of job at 16×
    await expect(page.locator("#replay-status")).to_have_text("completed")
    await expect(page.locator("#replay-log li")).to_have_count(3)


async def test_a_delayed_job_of_a_priority_counts_down_then_runs(page: Page) -> None:
    await expect(page.locator("#job-type option", has_text="demo")).to_have_count(1)
    await page.select_option("#job-type", "demo")
    await page.fill("#job-delay", "2")
    await page.fill("#job-priority", "7")  # (its schedule fires into the priority band's queue)
    await page.click("#submit")
    await expect(page).to_have_url(re.compile(r"#/jobs/"), timeout=30_000)
    await expect(page.locator("#job-status")).to_have_text("scheduled · priority 7")
    await expect(page.locator("#job-times")).to_contain_text("starts at")
    await expect(page.locator("#job-status")).to_have_text("completed · priority 7", timeout=15_000)


async def test_a_flow_shows_as_a_tree_on_its_jobs_pages_and_reaches_100_percent(page: Page, stack: Stack) -> None:
    step = {"type": "demo", "params": {"tick": 0.05}}
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        answer = await client.post("/api/flows", json={"job": {"type": "gather"}, "children": [
            {"name": "first", "job": step}, {"name": "second", "job": step, "depends_on": ["first"]}]})
    assert answer.status_code == 202, answer.text
    root, second = answer.json()["id"], answer.json()["jobs"][2]["id"]
    await page.goto(f"{stack.url}/#/jobs/{root}")
    tree = page.locator("#flow-tree")
    await expect(tree.locator("li")).to_have_count(3)
    await expect(page.locator("#job-status")).to_have_text("completed", timeout=20_000)
    bars = tree.get_by_role("progressbar")
    await expect(bars).to_have_count(3)
    for i in range(3):
        await expect(bars.nth(i)).to_have_attribute("aria-valuenow", "100", timeout=5_000)
    await tree.get_by_role("link", name="second").click()
    await expect(page).to_have_url(re.compile(f"#/jobs/{second}$"))
    await expect(page.locator("#flow-tree li")).to_have_count(3)  # the same flow, from one of its jobs
    # Its replay plays the whole flow: at the start the root waits, at the end every job is done.
    await page.click("#replay-link")
    replayed = page.locator("#replay-flow li")
    await expect(replayed).to_have_count(3)
    await expect(replayed.nth(0).locator(".pill")).to_have_text("blocked")
    await expect(replayed.nth(2).locator(".pill")).to_have_text("blocked")  # second waits for first
    await page.select_option("#replay-speed", "16")
    await page.click("#replay-play")
    for i in range(3):
        await expect(replayed.nth(i).locator(".pill")).to_have_text("completed", timeout=5_000)


async def test_video_renditions_shows_its_tree_reach_100_percent_and_each_rendition_plays(page: Page,
                                                                                          tmp_path: Path) -> None:
    clip = await make_clip(tmp_path / "clip.mp4")
    await page.select_option("#job-type", "video-renditions")
    await expect(page.locator("#file-field")).to_be_visible()
    await page.set_input_files("#job-file", str(clip))
    await page.click("#raw-params summary")
    await page.fill("#job-params", json.dumps({"heights": [120, 240]}))
    await page.click("#submit")
    await expect(page.locator("#job-status")).to_have_text("completed", timeout=60_000)
    tree = page.locator("#flow-tree")
    await expect(tree.locator("li")).to_have_count(3)
    bars = tree.get_by_role("progressbar")
    for i in range(3):
        await expect(bars.nth(i)).to_have_attribute("aria-valuenow", "100", timeout=5_000)
    await expect(page.locator("#artifacts")).to_contain_text("master.m3u8")
    await tree.get_by_role("link", name="240p").click()
    await expect(page.locator("#job-status")).to_have_text("completed")
    video = page.locator("#artifacts video")
    await expect(video).to_have_count(1)
    duration = await playable_duration(video)
    assert abs(duration - 2.0) < 0.3  # the rendition (a fragmented MP4, for HLS) plays in the page


async def test_create_watch_pause_and_delete_a_schedule_from_its_page(page: Page) -> None:
    await page.click("#nav-schedules")
    await expect(page.locator("#schedule-type option", has_text="demo")).to_have_count(1)
    await page.fill("#schedule-name", "every-second")
    await page.fill("#schedule-cron", "* * * * * *")
    await page.select_option("#schedule-type", "demo")
    await page.fill("#schedule-params", '{"tick": 0.01}')
    await page.click("#schedule-create")
    row = page.locator('tr[data-schedule="every-second"]')
    await expect(row).to_have_count(1)
    await expect(row.locator(".made")).not_to_have_text("0", timeout=10_000)  # refreshed as ticks make jobs
    await row.locator("summary").click()
    await row.locator("details a").first.click()  # a job it made opens on its own page
    await expect(page.locator("#job-status")).to_have_text("completed", timeout=15_000)
    await page.go_back()
    await row.locator('button[data-action="pause"]').click()
    await expect(row.locator(".next-run")).to_have_text("paused")
    await row.locator('button[data-action="delete"]').click()
    await row.locator('button[data-action="confirm-delete"]').click()
    await expect(row).to_have_count(0)
    await page.fill("#schedule-name", "bad")
    await page.fill("#schedule-cron", "not cron")
    await page.click("#schedule-create")
    await expect(page.locator("#schedule-form-error")).to_contain_text("fields")


async def test_a_batch_page_follows_the_batch_live_and_retries_its_failures(page: Page, stack: Stack) -> None:
    jobs = [{"type": "demo", "params": {"tick": 0.1}}] * 6 + [{"type": "broken"}] * 2
    batch = await page.evaluate("""async (jobs) => (await (await fetch("/api/batches", {method: "POST",
        headers: {"content-type": "application/json"}, body: JSON.stringify({jobs})})).json()).id""", jobs)
    await page.goto(f"{stack.url}/#/batches/{batch}")
    await expect(page.locator("#batch-grid .cell")).to_have_count(8)
    await expect(page.locator("#batch-status")).to_have_text("completed", timeout=20_000)
    bar = page.get_by_role("progressbar", name="Batch progress")
    await expect(bar).to_have_attribute("aria-valuenow", "100")
    await expect(page.locator("#batch-counts")).to_contain_text("8 of 8 ended")
    await expect(page.locator('#batch-grid .cell[data-status="failed"]')).to_have_count(2)
    await expect(page.locator("#batch-failures li")).to_have_count(2)
    await expect(page.locator("#batch-failures")).to_contain_text("broken on purpose")
    await page.check("#batch-only-failures")
    await expect(page.locator('#batch-grid .cell[data-status="completed"]').first).to_be_hidden()
    await page.locator('#batch-grid .cell[data-status="failed"]').first.click()  # a job links back to its batch
    await expect(page.locator("#job-origin a")).to_have_text("its batch")
    await page.click("#job-origin a")
    await expect(page.locator("#batch-grid .cell")).to_have_count(8)
    await page.check("#batch-only-failures")
    await page.click("#batch-retry")
    await expect(page).not_to_have_url(re.compile(batch), timeout=10_000)
    await expect(page.locator("#batch-grid .cell")).to_have_count(2)  # a new batch of the two failed jobs
    await expect(page.locator("#batch-status")).to_have_text("completed", timeout=20_000)
    await page.click("#nav-batches")
    await expect(page.locator("#batch-rows tr")).to_have_count(2)


async def test_pause_a_type_from_the_dashboard_and_resume_it(page: Page) -> None:
    queue = page.locator('tr[data-queue="demo"]')
    await queue.locator('button[data-action="pause"]').click()
    await expect(queue.locator(".state")).to_have_text("paused")
    job_id = await submit_from_form(page, "demo", {"tick": 0.01})
    await page.goto(page.url.split("#")[0] + "#/")
    await expect(queue.locator(".waiting")).to_have_text("1", timeout=5_000)  # accepted, waiting
    await queue.locator('button[data-action="resume"]').click()
    await expect(queue.locator(".state")).to_have_text("active")
    await page.goto(page.url.split("#")[0] + f"#/jobs/{job_id}")
    await expect(page.locator("#job-status")).to_have_text("completed", timeout=15_000)


async def test_the_workers_page_shows_the_processor_and_drains_and_resumes_it(page: Page) -> None:
    await expect(page.locator('tr[data-queue="demo"] .workers')).to_have_text("1", timeout=10_000)
    await page.click("#nav-workers")
    worker = page.locator("#worker-rows tr[data-worker]")
    await expect(worker).to_have_count(1)
    await expect(worker.locator(".state")).to_have_text("up")
    await expect(worker).to_contain_text("demo")
    await expect(worker.locator(".slots")).to_have_text(re.compile(r"^0 / \d+$"))
    await worker.locator('button[data-action="drain"]').click()
    await expect(worker.locator(".state")).to_have_text("drained")
    await page.goto(page.url.split("#")[0] + "#/")
    job_id = await submit_from_form(page, "demo", {"tick": 0.01})
    await page.goto(page.url.split("#")[0] + "#/workers")
    await expect(worker.locator(".state")).to_have_text("drained")
    await worker.locator('button[data-action="resume"]').click()
    await expect(worker.locator(".state")).to_have_text("up")
    await page.goto(page.url.split("#")[0] + f"#/jobs/{job_id}")
    await expect(page.locator("#job-status")).to_have_text("completed", timeout=15_000)


async def test_retry_every_failed_job_of_a_search_from_the_history_page(page: Page, client: httpx.AsyncClient) -> None:
    failed = []
    for _ in range(3):
        answer = await client.post("/api/jobs", json={"type": "broken", "tags": ["retry-me"]})
        failed.append(answer.json()["id"])
    for job_id in failed:
        await read_sse(client, f"/api/jobs/{job_id}/events")
    await page.click("#nav-history")
    await page.select_option("#history-status", "failed")
    await page.fill("#history-tag", "retry-me")
    await page.click("#history-retry")
    await expect(page.locator("#history-retry-count")).to_have_text("Retry 3 failed jobs?")
    await page.click("#history-retry-confirm")
    await expect(page).to_have_url(re.compile(r"#/batches/[A-Za-z0-9_-]+$"), timeout=10_000)
    await expect(page.locator("#batch-grid .cell")).to_have_count(3)
    batch_id = page.url.rsplit("/", 1)[1]
    retried = (await client.get(f"/api/batches/{batch_id}")).json()["jobs"]
    await page.goto(page.url.split("#")[0] + f"#/jobs/{retried[0]['id']}")
    await expect(page.locator("#job-origin .retry-of")).to_have_text(re.compile(r"^retry of "))
    # Then delete them all from history (the retries of `broken` failed too): the list shows none.
    for job in retried:
        await read_sse(client, f"/api/jobs/{job['id']}/events")
    await page.click("#nav-history")
    await page.select_option("#history-status", "failed")
    await page.fill("#history-tag", "retry-me")
    await page.click("#history-form button[type=submit]")
    await expect(page.locator("#history-rows tr")).to_have_count(6)
    await page.click("#history-delete")
    await expect(page.locator("#history-retry-count")).to_have_text("Delete 6 failed jobs from history?")
    await page.click("#history-retry-confirm")
    await expect(page.locator("#history-retry-count")).to_have_text("6 jobs deleted.")
    await expect(page.locator("#history-bulk-bar")).to_have_attribute("aria-valuenow", "100")  # (its progress, streamed)
    await expect(page.locator("#history-rows")).to_have_text("No job matches.", timeout=10_000)
    assert (await client.get(f"/api/jobs/{failed[0]}")).status_code == 404
    # Live jobs of a filter, cancelled from the same page (an ended status is refused for it).
    later = [(await client.post("/api/jobs", json={"type": "demo", "delay_s": 600, "tags": ["retry-me"]})).json()["id"]
             for _ in range(2)]
    await page.click("#history-cancel")
    await expect(page.locator("#history-error-text")).to_contain_text("Choose a live status")
    await page.select_option("#history-status", "scheduled")
    await page.click("#history-cancel")
    await expect(page.locator("#history-retry-count")).to_have_text("Cancel 2 scheduled jobs?")
    await page.click("#history-retry-confirm")
    await expect(page.locator("#history-retry-count")).to_have_text("2 jobs cancelled.")
    for job_id in later:
        assert (await client.get(f"/api/jobs/{job_id}")).json()["status"] == "cancelled"
    # Both were stored operations a conductor ran: the page lists them, the newest first.
    await expect(page.locator("#history-operations li").first).to_contain_text("cancel 2 of 2")
    await expect(page.locator("#history-operations")).to_contain_text("delete 6 of 6")
    assert {op["action"] for op in (await client.get("/api/operations")).json()} == {"cancel", "delete"}


async def test_a_firing_failure_alert_shows_a_banner_on_every_page(page: Page, client: httpx.AsyncClient) -> None:
    banner = page.locator("#alerts-banner")
    await expect(banner).to_be_hidden()
    rule = await client.put("/api/alerts/broken-failing", json={"type": "broken", "min_failures": 2, "window_s": 60})
    assert rule.status_code == 200, rule.text
    for _ in range(2):
        job_id = (await client.post("/api/jobs", json={"type": "broken"})).json()["id"]
        await read_sse(client, f"/api/jobs/{job_id}/events")
    await expect(banner).to_be_visible(timeout=15_000)
    await expect(banner.locator('[data-alert="broken-failing"]')).to_contain_text("2 broken jobs failed")
    await page.click("#nav-history")
    await expect(banner).to_be_visible()
    assert (await client.delete("/api/alerts/broken-failing")).status_code == 204
    await expect(banner).to_be_hidden(timeout=15_000)


async def test_upload_a_clip_and_watch_the_transcoded_video_play(page: Page, tmp_path: Path) -> None:
    clip = await make_clip(tmp_path / "clip.mp4")
    await page.select_option("#job-type", "video-transcode")
    await expect(page.locator("#file-field")).to_be_visible()
    await page.set_input_files("#job-file", str(clip))
    # The form is drawn from the type's params schema: a number field per numeric param.
    height = page.get_by_label("height")
    await expect(height).to_have_attribute("type", "number")
    await expect(height).to_have_value("360")
    await height.fill("120")
    assert json.loads(await page.input_value("#job-params")) == {"height": 120, "hls": False}  # the fields write the JSON
    await page.click("#raw-params summary")
    await page.fill("#job-params", json.dumps({"height": 120, "hls": False, "thumbnail_at_s": 0.5}))
    await expect(page.get_by_label("thumbnail_at_s")).to_have_value("0.5")  # and the JSON moves the fields
    await page.click("#submit")
    await expect(page.get_by_role("progressbar", name="Upload progress")).to_have_attribute("aria-valuenow", "100")
    await expect(page.locator("#job-status")).to_have_text("completed", timeout=30_000)
    steps = await page.locator("#steps li").evaluate_all("items => items.map(i => i.firstChild.textContent)")
    assert steps == ["Upload", "Probe", "Transcode", "Thumbnail", "Done"]
    video = page.locator("#artifacts video")
    await expect(video).to_have_count(1)
    duration = await playable_duration(video)
    assert abs(duration - 2.0) < 0.3
    await expect(page.locator("#artifacts img")).to_have_count(1)
    assert await page.locator("#artifacts img").evaluate("img => img.complete && img.naturalHeight") == 120


async def test_the_page_reconnects_after_a_gateway_restart_without_losing_or_repeating_a_log_line(
    nats_server: EmbeddedNats, names: Names, tmp_path: Path, js: JetStreamContext
) -> None:
    port = free_port()
    env = service_env(nats_server.url, names, tmp_path, JOBLINE_PORT=str(port), JOBLINE_SSE_RETRY_MS="300")
    processor = await ServiceProcess.service("processor", env)
    gateway = await ServiceProcess.service("gateway", env)
    try:
        url = await gateway_url(gateway)
        await wait_for_job_type(js, names, "demo")
        async for page in open_page(url):
            job_id = await submit_from_form(page, "demo", {"steps": ["A", "B", "C", "D"], "step_seconds": 1.5,
                                                           "ticks_per_step": 6})
            await expect(page.locator("#log li").first).to_be_visible(timeout=10_000)
            assert await gateway.stop(signal.SIGTERM) == 0
            await expect(page.locator("#connection")).to_have_text("reconnecting", timeout=5_000)
            gateway = await ServiceProcess.service("gateway", env)
            await gateway_url(gateway)
            await expect(page.locator("#connection")).to_have_text("live", timeout=10_000)
            await expect(page.locator("#job-status")).to_have_text("completed", timeout=20_000)
            shown = await page.locator("#log li").evaluate_all("items => items.map(i => i.lastChild.textContent)")
            stored = [r.event.message for r in await read_timeline(js, names, job_id) if isinstance(r.event, LogLineWritten)]
            assert shown == stored
    finally:
        await stop_all([p for p in (processor, gateway) if p.process.returncode is None])


async def test_ten_tabs_each_stay_live_on_one_connection_per_tab(stack: Stack) -> None:
    async with chromium() as browser:
        context = await browser.new_context()
        pages = []
        for _ in range(10):
            tab = await context.new_page()
            await tab.goto(stack.url + "/")
            await expect(tab.locator("#connection")).to_have_text("live")
            pages.append(tab)
        # Six connections per host is all a browser allows: ten tabs live means one stream each.
        job_id = await submit_from_form(pages[0], "demo", {"tick": 0.05})
        for tab in pages[1:]:
            await expect(tab.locator("#jobs tr a", has_text=job_id[-10:])).to_have_count(1, timeout=10_000)
            await expect(tab.locator("#jobs .pill", has_text="completed")).to_have_count(1, timeout=10_000)
        await context.close()


async def test_the_service_logs_page_tails_records_live_and_as_text(page: Page) -> None:
    import logging

    await page.click("#nav-logs")
    await expect(page.locator("#svc-status")).to_have_text("live")
    await page.select_option("#svc-service", "gateway")
    await page.select_option("#svc-level", "warning")
    await expect(page.locator("#svc-status")).to_have_text("live")
    logging.getLogger("jobline.gateway.ui-test").warning("<b>disk</b> almost full")
    await expect(page.locator("#svc-log li", has_text="<b>disk</b> almost full").first).to_be_visible(timeout=10_000)
    assert await page.locator("#svc-log b").count() == 0


def test_the_ui_sends_a_content_security_policy_without_inline_scripts() -> None:
    html = (Path(__file__).resolve().parents[1] / "web" / "index.html").read_text()
    assert "<script>" not in html and "onclick" not in html and "style=" not in html
    for source in (Path(__file__).resolve().parents[1] / "web").glob("*.js"):
        assert "innerHTML" not in source.read_text(), f"{source.name} renders HTML"



async def test_a_job_long_gone_from_the_stream_is_found_in_history_and_opens_with_steps_logs_and_replay(
        nats_server: EmbeddedNats, names: Names, data_dir: Path, js: JetStreamContext) -> None:
    from dataclasses import replace as replace_settings

    from .helpers import TEST_RETENTION, eventually, read_sse, wait_for_history_seq

    retention = replace_settings(TEST_RETENTION, jobs_max_age_s=3.0)
    async with running_stack(nats_server.url, names, data_dir, js, registry=registry, with_logsink=False,
                             retention=retention, gateway={"recent_jobs": 1}) as stack:
        import httpx

        async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:
            old = (await client.post("/api/jobs", json={"type": "demo", "params": {"tick": 0.05}, "owner": "acme",
                                                         "tags": ["promo"]})).json()["id"]
            await read_sse(client, f"/api/jobs/{old}/events")
            newer = (await client.post("/api/jobs", json={"type": "hostile"})).json()["id"]
            await read_sse(client, f"/api/jobs/{newer}/events")
        last = (await js.stream_info(names.jobs_stream)).state.last_seq
        await wait_for_history_seq(js, names, last)

        async def gone() -> bool:
            return (await js.stream_info(names.jobs_stream)).state.messages == 0

        await eventually(gone, 20, "the stream to drop every event by age")
        async for page in open_page(stack.url):
            # The dashboard's charts and totals cover all history, with their numbers as text too.
            await expect(page.locator("#totals")).to_contain_text("All history: 2 jobs — 2 completed")
            await expect(page.locator("#ended-caption")).to_contain_text("2 completed, 0 failed")
            await expect(page.locator("#durations tbody tr")).to_have_count(2)
            await page.fill("#activity-owner", "acme")  # one owner's
            await page.press("#activity-owner", "Enter")
            await expect(page.locator("#totals")).to_contain_text("acme's history: 1 job — 1 completed")
            await expect(page.locator("#ended-caption")).to_contain_text("1 completed, 0 failed")
            await expect(page.locator("#durations tbody tr")).to_have_count(1)
            await page.click("#nav-history")
            await page.select_option("#history-status", "completed")
            await page.fill("#history-type", "demo")
            await page.click("#history-form button[type=submit]")
            await expect(page.locator("#history-rows tr")).to_have_count(1)
            await page.select_option("#history-status", "")  # by owner and tag instead
            await page.fill("#history-type", "")
            await page.fill("#history-owner", "acme")
            await page.fill("#history-tag", "promo")
            await page.click("#history-form button[type=submit]")
            await expect(page.locator("#history-rows tr")).to_have_count(1)
            await expect(page.locator("#history-rows tr td").nth(3)).to_have_text("acme")
            await page.click(f"#history-rows a[href='#/jobs/{old}']")
            await expect(page.locator("#job-status")).to_have_text("completed")
            await expect(page.locator("#job-labels")).to_contain_text("acme")
            await expect(page.locator("#job-labels")).to_contain_text("#promo")
            statuses = await page.locator("#steps li").evaluate_all("items => items.map(i => i.dataset.status)")
            assert statuses == ["done", "done", "done"]
            await expect(page.locator("#gantt svg rect")).to_have_count(3)
            await expect(page.locator("#gantt svg")).to_have_attribute("aria-label", re.compile(r"^Steps over time: Upload"))
            await expect(page.locator("#log li")).to_have_count(3)
            await page.click("#replay-link")
            await page.select_option("#replay-speed", "16")
            await page.click("#replay-play")
            await expect(page.locator("#replay-status")).to_have_text("completed", timeout=5_000)
            await expect(page.locator("#replay-log li")).to_have_count(3)
