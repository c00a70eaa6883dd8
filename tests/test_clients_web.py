"""`examples/webapp` — a web app of its own, on its own origin — shows Jobline jobs with
`<jobline-progress>` and `<jobline-upload>` (real Chromium, services as real processes)."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import pytest
from playwright.async_api import Page, expect

from jobline.client import AsyncClient
from jobline.contract.names import Names
from jobline.runtime.embedded_nats import EmbeddedNats

from .browser import chromium
from .processes import ServiceProcess, System, free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
TOKEN = "webapp-test-token"
HOSTILE = "<img src=x onerror=alert(1)> <b>not bold</b>"
TASKS = f'''
import asyncio
from jobline.processor import JobContext
from jobline.processor.registry import task

@task("chatty", steps=["Upload", "Processing", "Done"])
async def chatty(ctx: JobContext) -> dict:
    ctx.log({HOSTILE!r})
    for i, name in enumerate(["Upload", "Processing", "Done"]):
        ctx.step(name)
        ctx.log(f"{{name}} begins")
        for tick in range(4):
            await asyncio.sleep(float(ctx.params.get("tick", 0.3)))
            ctx.progress(i * 4 + tick + 1, 12)
    return {{"ok": True}}
'''


@pytest.fixture
async def system(nats_server: EmbeddedNats, names: Names, tmp_path: Path) -> AsyncIterator[tuple[System, str]]:
    web_port = free_port()
    web_origin = f"http://127.0.0.1:{web_port}"
    running = System(nats_server.url, names, tmp_path, task_modules={"webtasks": TASKS}, settings={
        "JOBLINE_PORT": str(free_port()), "JOBLINE_API_TOKENS": TOKEN, "JOBLINE_CORS_ORIGINS": web_origin})
    webapp = None
    try:
        await running.start_all(history=True)
        env = {**running.env(), "JOBLINE_URL": running.url, "JOBLINE_TOKEN": TOKEN, "WEBAPP_PORT": str(web_port)}
        webapp = await ServiceProcess.start("webapp", [sys.executable, str(ROOT / "examples/webapp/app.py")], env)
        await webapp.wait_for_line(r"example web app on", timeout=30)
        yield running, web_origin
    finally:
        if webapp is not None:
            await webapp.stop()
        await running.stop()


async def open_page(url: str, *, javascript: bool = True, user: str | None = None
                    ) -> AsyncIterator[tuple[Page, list[str]]]:
    async with chromium() as browser:
        context = await browser.new_context(java_script_enabled=javascript)
        if user is not None:  # (the example app's stand-in for its own sign-in)
            origin = "/".join(url.split("/")[:3])
            await context.add_cookies([{"name": "user", "value": user, "url": f"{origin}/"}])
        page = await context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" and "Content Security" in m.text else None)
        await page.goto(url)
        yield page, problems


async def progress_state(page: Page) -> dict[str, Any]:
    return await page.evaluate("""() => {
        const el = document.querySelector('jobline-progress');
        const root = el.shadowRoot;
        return {status: el.getAttribute('status'), connection: el.getAttribute('connection'),
                bar: root.querySelector('[part~=bar]').getAttribute('aria-valuenow'),
                steps: [...root.querySelectorAll('[part~=step]')].map(s => s.getAttribute('part')),
                logs: root.querySelector('[part~=logs]').textContent,
                logElements: root.querySelector('[part~=logs]').children.length,
                videoDuration: root.querySelector('video')?.duration ?? null};
    }""")


async def wait_for_status(page: Page, status: str, timeout_s: float = 60) -> dict[str, Any]:
    # (Locators, not wait_for_function: the page's strict CSP forbids the eval that one needs.)
    await expect(page.locator("jobline-progress")).to_have_attribute("status", status, timeout=timeout_s * 1000)
    return await progress_state(page)


async def until(page: Page, expression: str, timeout_s: float = 30) -> None:
    """Poll an expression through CDP (not subject to the page's CSP) until it is true."""
    async with asyncio.timeout(timeout_s):
        while not await page.evaluate(expression):
            await page.wait_for_timeout(100)


async def test_the_element_on_another_origin_follows_a_job_through_a_gateway_restart(system: tuple[System, str]) -> None:
    running, web_origin = system
    async with AsyncClient(running.url, token=TOKEN) as jobline:
        job = await jobline.submit("chatty", {"tick": 0.35}, owner="guest")
        async for page, problems in open_page(f"{web_origin}/jobs/{job.id}"):
            await wait_for_status(page, "running")
            assert HOSTILE in (await progress_state(page))["logs"]
            # The gateway restarts mid-job: the element reconnects and resumes.
            await running.processes["gateway"].stop(signal.SIGTERM)
            await running.start("gateway")
            done = await wait_for_status(page, "completed")
            assert done["bar"] == "100" and done["steps"] == ["step done"] * 3
            assert HOSTILE in done["logs"] and "Done begins" in done["logs"] and done["logElements"] == 0  # text only
            assert problems == []
        assert (await jobline.get(job.id)).status == "completed"


def make_clip(path: Path) -> Path:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc=size=320x240:rate=10", "-t", "1", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


async def test_a_plain_form_without_javascript_starts_a_transcode_that_plays(system: tuple[System, str],
                                                                            tmp_path: Path) -> None:
    running, web_origin = system
    clip = make_clip(tmp_path / "clip.mp4")
    async for page, problems in open_page(f"{web_origin}/", javascript=False):
        await page.set_input_files("#plain input[name=upload]", str(clip))
        await page.select_option("#plain select[name=height]", "120")
        async with page.expect_navigation(url=re.compile(rf"{re.escape(web_origin)}/jobs/\w+")):
            await page.click("#plain button[type=submit]")
        job_id = page.url.rsplit("/", 1)[1]
        assert problems == []
    async with AsyncClient(running.url, token=TOKEN) as jobline:
        final = await jobline.wait(job_id, timeout=120)
        assert final.params["height"] == 120 and {a.name for a in final.artifacts} >= {"video.mp4"}
    async for page, problems in open_page(f"{web_origin}/jobs/{job_id}"):
        await wait_for_status(page, "completed")
        await until(page, "(document.querySelector('jobline-progress').shadowRoot.querySelector('video')"
                          "?.duration || 0) > 0.5")
        assert problems == []


async def test_the_upload_element_sends_the_file_with_the_job_in_one_request(system: tuple[System, str],
                                                                            tmp_path: Path) -> None:
    _running, web_origin = system
    clip = make_clip(tmp_path / "clip.mp4")
    async for page, problems in open_page(f"{web_origin}/"):
        await page.set_input_files("jobline-upload input[type=file]", str(clip))
        async with page.expect_navigation(url=re.compile(rf"{re.escape(web_origin)}/jobs/\w+")):
            await page.click("jobline-upload button")
        done = await wait_for_status(page, "completed", timeout_s=120)
        assert done["bar"] == "100" and all(s == "step done" for s in done["steps"])
        await expect(page.locator("jobline-progress video")).to_have_count(1)
        assert problems == []


async def test_elements_on_one_page_share_one_connection(system: tuple[System, str]) -> None:
    running, web_origin = system
    async with AsyncClient(running.url, token=TOKEN) as jobline:
        first, second, third = [await jobline.submit("chatty", {"tick": 0.05}, owner="guest") for _ in range(3)]
        streams: list[str] = []
        async for page, problems in open_page(f"{web_origin}/jobs/{first.id}"):
            page.on("request", lambda request: streams.append(request.url) if "/api/events" in request.url else None)
            await wait_for_status(page, "completed")
            streams.clear()  # (the first job's stream, closed at its end)
            # Two more elements at once (as a page of uploads would add them): one stream for all.
            await page.evaluate("""ids => { for (const id of ids) {
                const element = document.createElement('jobline-progress');
                element.setAttribute('job', id);
                document.body.append(element); } }""", [second.id, third.id])
            for index in (1, 2):
                await expect(page.locator("jobline-progress").nth(index)).to_have_attribute("status", "completed",
                                                                                           timeout=30_000)
            # (The first job had ended: the new stream follows only the two others.) One stream for both;
            # if one of them ends while the other runs, the page narrows that stream to the other,
            # resuming where it was (`after=`) — never a stream per element.
            assert streams and problems == []
            assert second.id in streams[0] and third.id in streams[0] and "access_token=" in streams[0]
            for narrowed in streams[1:]:
                assert (second.id in narrowed) != (third.id in narrowed), narrowed


async def test_each_users_page_reads_that_users_jobs_and_nothing_of_anothers(system: tuple[System, str]) -> None:
    running, web_origin = system
    async with AsyncClient(running.url, token=TOKEN) as jobline:
        alices = await jobline.submit("chatty", {"tick": 0.05, "note": "alice-only-7f3"}, owner="alice")
        bobs = await jobline.submit("chatty", {"tick": 0.05, "note": "bob-only-9c1"}, owner="bob")
        for job in (alices, bobs):
            await job.wait(timeout=60)
    # Alice's page shows her job; asked to show Bob's (its id guessed or copied), it gets nothing.
    async for page, problems in open_page(f"{web_origin}/jobs/{alices.id}", user="alice"):
        await wait_for_status(page, "completed")
        await page.evaluate("""id => { const element = document.createElement('jobline-progress');
            element.id = 'guessed'; element.setAttribute('job', id); document.body.append(element); }""", bobs.id)
        await expect(page.locator("#guessed [part~=error]")).to_contain_text("404", timeout=10_000)  # (said, not shown)
        await expect(page.locator("#guessed")).not_to_have_attribute("status", re.compile(".+"))
        # A job the page may not read does not hold up the stream of those it may.
        async with AsyncClient(running.url, token=TOKEN) as jobline:
            another = await jobline.submit("chatty", {"tick": 0.1}, owner="alice")
        await page.evaluate("""id => { const element = document.createElement('jobline-progress');
            element.id = 'another'; element.setAttribute('job', id); document.body.append(element); }""", another.id)
        await expect(page.locator("#another")).to_have_attribute("status", "completed", timeout=30_000)
        # Every way the page's script could try, with the token the app gives it.
        answers = await page.evaluate("""async ([gateway, theirs]) => {
            const token = (await (await fetch(`/token?purpose=stream&jobs=${theirs}`)).json()).token;
            const get = async (path) => {
                const response = await fetch(`${gateway}${path}${path.includes("?") ? "&" : "?"}access_token=${token}`);
                return [path, response.status, await response.text()];
            };
            return Promise.all([`/api/jobs/${theirs}`, `/api/jobs/${theirs}/events`, `/api/jobs/${theirs}/logs`,
                                `/api/jobs/${theirs}/timeline`, `/api/events?jobs=${theirs}`, "/api/events",
                                "/api/events?firehose=1&jobs=x", "/api/jobs", `/api/jobs?owner=bob`].map(get));
        }""", [running.url, bobs.id])
        statuses = {path: status for path, status, _ in answers}
        assert [statuses[p] for p in (f"/api/jobs/{bobs.id}", f"/api/jobs/{bobs.id}/events", f"/api/jobs/{bobs.id}/logs",
                                      f"/api/jobs/{bobs.id}/timeline", f"/api/events?jobs={bobs.id}")] == [404] * 5
        assert statuses["/api/events"] == statuses["/api/events?firehose=1&jobs=x"] == 403
        assert statuses["/api/jobs"] == statuses["/api/jobs?owner=bob"] == 200  # (her own jobs: the list is hers)
        assert not any("bob-only-9c1" in body for _, _, body in answers), answers
        assert any("alice-only-7f3" in body for path, _, body in answers if path.startswith("/api/jobs?")), answers
        shown = await page.evaluate("""() => [...document.querySelectorAll('jobline-progress')]
            .map(e => e.shadowRoot.textContent).join(' ')""")
        assert "bob-only-9c1" not in shown and "Done begins" in shown
        del problems  # (404s of the guessed job are expected console noise here)
