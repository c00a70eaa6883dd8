"""Failure alerts on the real stack: a rule on a failing type fires once its failures reach the
threshold in the window — one signed `alert.firing` however many more fail, a banner's worth of state
in `GET /api/alerts` — and resolves (one `alert.resolved`) when the failures leave the window."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from jobline.processor import JobContext
from jobline.processor.registry import Registry

from . import test_webhooks
from .helpers import eventually, read_sse
from .test_webhooks import SECRETS, Receiver, verify

registry = Registry()
receiver = test_webhooks.receiver  # (its webhook receiver fixture: an HTTP server on 127.0.0.1)


@registry.task("codec", max_attempts=1)
async def codec(ctx: JobContext) -> None:
    raise RuntimeError("codec h265 not supported")


@registry.task("fine")
async def fine(ctx: JobContext) -> None:
    return None


STACK: dict[str, Any] = dict(registry=registry, with_logsink=False, gateway={
    "webhook_secrets": SECRETS, "webhook_allow": ("127.0.0.1",)}, conductor={"alert_check_s": 0.2})


async def fail(client: httpx.AsyncClient, n: int) -> None:
    ids = [(await client.post("/api/jobs", json={"type": "codec"})).json()["id"] for _ in range(n)]
    for job_id in ids:
        await read_sse(client, f"/api/jobs/{job_id}/events")


def kinds(hook: Receiver) -> list[str]:
    return [json.loads(body)["type"] for _, body in hook.requests]


@pytest.mark.slow
async def test_a_rule_fires_once_then_resolves(client: httpx.AsyncClient, receiver: Receiver) -> None:
    rule = {"type": "codec", "min_failures": 3, "window_s": 4, "webhook_url": f"http://127.0.0.1:{receiver.port}/hook"}
    made = await client.put("/api/alerts/codec-failing", json=rule)
    assert made.status_code == 200, made.text
    assert made.json()["state"]["firing"] is False
    await fail(client, 2)
    done = await client.post("/api/jobs", json={"type": "fine"})  # (another type: not counted)
    await read_sse(client, f"/api/jobs/{done.json()['id']}/events")

    async def checked() -> bool:
        state = (await client.get("/api/alerts/codec-failing")).json()["state"]
        return state["checked_at"] is not None and state["failures"] == 2

    await eventually(checked, what="the rule checked with 2 failures")
    assert (await client.get("/api/alerts/codec-failing")).json()["state"]["firing"] is False and not receiver.requests

    await fail(client, 3)

    async def firing() -> bool:
        return bool(receiver.requests)

    await eventually(firing, what="the alert sent")
    state = (await client.get("/api/alerts/codec-failing")).json()["state"]
    assert state["firing"] is True and state["failures"] >= 3
    headers, body = receiver.requests[0]
    verify(headers, body)  # (signed like a job's webhook, with both rotation secrets)
    sent = json.loads(body)
    assert sent["type"] == "alert.firing" and sent["data"]["name"] == "codec-failing"
    assert sent["data"]["state"]["failures"] >= 3
    await fail(client, 2)  # more failures while it fires: no second alert within the window
    assert kinds(receiver) == ["alert.firing"]
    listed = (await client.get("/api/alerts")).json()
    assert [(a["name"], a["state"]["firing"]) for a in listed] == [("codec-failing", True)]

    async def resolved() -> bool:
        return "alert.resolved" in kinds(receiver)

    await eventually(resolved, timeout=15, what="the alert resolved once the failures left the window")
    assert kinds(receiver) == ["alert.firing", "alert.resolved"]
    assert (await client.get("/api/alerts/codec-failing")).json()["state"]["firing"] is False


@pytest.mark.slow
async def test_an_alert_not_delivered_is_tried_again_with_the_same_id(client: httpx.AsyncClient,
                                                                       receiver: Receiver) -> None:
    receiver.statuses = [503, 500]  # the receiver is down twice, then answers
    rule = {"type": "codec", "min_failures": 1, "window_s": 60, "webhook_url": f"http://127.0.0.1:{receiver.port}/hook"}
    assert (await client.put("/api/alerts/codec-retried", json=rule)).status_code == 200
    await fail(client, 1)

    async def delivered() -> bool:
        state = (await client.get("/api/alerts/codec-retried")).json()["state"]
        return len(receiver.requests) >= 3 and state["undelivered"] is None

    await eventually(delivered, timeout=20, what="the alert delivered on its third try")
    assert kinds(receiver) == ["alert.firing"] * 3
    ids = {headers["webhook-id"] for headers, _ in receiver.requests}
    assert len(ids) == 1, ids  # one alert, tried three times: the receiver dedupes by its id
    state = (await client.get("/api/alerts/codec-retried")).json()["state"]
    assert state["attempts"] == 3 and state["last_error"] == "HTTP 500", state
    assert (await client.delete("/api/alerts/codec-retried")).status_code == 204


@pytest.mark.slow
async def test_rules_are_checked_and_deleted(client: httpx.AsyncClient) -> None:
    for body, key in (({"min_failures": 0}, "min_failures"), ({"window_s": 0.5}, "window_s"),
                      ({"min_rate": 1.5}, "min_rate"), ({"type": "not a type"}, "type"),
                      ({"webhook_url": "http://10.0.0.1/hook"}, "webhook_url")):
        refused = await client.put("/api/alerts/bad", json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.json()["errors"][0]["key"] == key
    assert (await client.put("/api/alerts/bad", json={"min_failures": "5"})).status_code == 400
    assert (await client.put("/api/alerts/Bad_Name!", json={})).status_code in (400, 422)
    assert (await client.put("/api/alerts/any-type", json={"min_failures": 2, "min_rate": 0.5})).status_code == 200
    assert (await client.get("/api/alerts/any-type")).json()["rule"]["type"] is None
    assert (await client.delete("/api/alerts/any-type")).status_code == 204
    assert (await client.get("/api/alerts/any-type")).status_code == 404
    assert (await client.delete("/api/alerts/any-type")).status_code == 404


@pytest.mark.slow
async def test_the_cli_sets_lists_and_deletes_rules(client: httpx.AsyncClient) -> None:
    import subprocess
    import sys

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "jobline.cli.main", "alerts", *args, "--url", str(client.base_url)],
                              capture_output=True, text=True, timeout=60)

    made = await asyncio.to_thread(cli, "set", "codec-cli", "--type", "codec", "--failures", "3", "--window", "60")
    assert made.returncode == 0 and "codec-cli" in made.stdout, made.stdout + made.stderr
    listed = await asyncio.to_thread(cli, "--json")
    rules = {r["name"]: r["rule"] for r in json.loads(listed.stdout)}
    assert rules["codec-cli"]["min_failures"] == 3 and rules["codec-cli"]["type"] == "codec"
    refused = await asyncio.to_thread(cli, "set", "codec-cli", "--failures", "0")
    assert refused.returncode != 0 and "min_failures" in refused.stderr
    gone = await asyncio.to_thread(cli, "delete", "codec-cli")
    assert gone.returncode == 0
    assert (await client.get("/api/alerts/codec-cli")).status_code == 404
