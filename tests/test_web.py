"""The first page in real headless Chromium: submit a demo job and watch it live."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.js import JetStreamContext
from playwright.async_api import Browser, Page, expect

from jobline.contract.names import Names
from jobline.processor import JobContext
from jobline.processor.registry import Registry
from jobline.runtime.embedded_nats import EmbeddedNats

from .browser import chromium
from .helpers import Stack, running_stack

pytestmark = pytest.mark.slow

registry = Registry()
HOSTILE = "<img src=x onerror=alert(1)> & <script>alert(2)</script>"


@registry.task("demo", steps=["Upload", "Processing", "Done"])
async def demo(ctx: JobContext) -> dict[str, bool]:
    import asyncio

    for i, name in enumerate(["Upload", "Processing", "Done"]):
        ctx.step(name)
        ctx.log(f"{name} begins")
        await asyncio.sleep(0.15)
        ctx.progress(i + 1, 3, message=f"{name} done")
    return {"ok": True}


@registry.task("hostile")
async def hostile(ctx: JobContext) -> None:
    ctx.log(HOSTILE, level="error")


@pytest.fixture
async def stack(nats_server: EmbeddedNats, names: Names, data_dir: Path, js: JetStreamContext) -> AsyncIterator[Stack]:
    async with running_stack(nats_server.url, names, data_dir, js, registry=registry, with_logsink=False) as running:
        yield running


@pytest.fixture
async def page(stack: Stack) -> AsyncIterator[Page]:
    async with chromium() as browser:
        page = await browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(stack.url + "/")
        yield page
        assert dialogs == [], f"a dialog fired: {dialogs}"
        assert errors == [], f"page errors: {errors}"


async def submit_from_form(page: Page, job_type: str, params: dict[str, object]) -> None:
    await expect(page.locator("#job-type option", has_text=job_type)).to_have_count(1)
    await page.select_option("#job-type", job_type)
    await page.fill("#job-params", json.dumps(params))
    await page.click("#submit")


async def test_submit_a_demo_job_and_watch_it_reach_100_percent_with_every_step_done(page: Page) -> None:
    await submit_from_form(page, "demo", {})
    bar = page.get_by_role("progressbar")
    await expect(page.locator("#steps li")).to_have_count(3)
    await expect(page.locator("#job-status")).to_have_text("completed", timeout=15_000)
    await expect(bar).to_have_attribute("aria-valuenow", "100")
    await expect(page.locator("#steps li")).to_have_text([
        __import__("re").compile(r"^Upload"), __import__("re").compile(r"^Processing"), __import__("re").compile(r"^Done"),
    ])
    statuses = await page.locator("#steps li").evaluate_all("items => items.map(i => i.dataset.status)")
    assert statuses == ["done", "done", "done"]
    await expect(page.locator("#log li")).to_have_count(3)
    await expect(page.locator("#log")).to_contain_text("Processing begins")
    await expect(page.locator("#jobs tr")).not_to_have_count(0)


async def test_a_hostile_log_line_shows_as_text_and_runs_nothing(page: Page) -> None:
    await submit_from_form(page, "hostile", {})
    await expect(page.locator("#job-status")).to_have_text("completed", timeout=15_000)
    line = page.locator("#log li").first
    await expect(line).to_contain_text(HOSTILE)
    assert await page.locator("#log img, #log script").count() == 0
