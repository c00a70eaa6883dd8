"""Optional API tokens on every route (SSE included), session cookies, stream tokens, caps, CORS."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

import httpx
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from .helpers import Stack, eventually, read_sse

TOKENS = ("first-secret-token", "second-secret-token")
BEARER = {"Authorization": f"Bearer {TOKENS[1]}"}


# The services this module's tests run against (conftest.py's `stack`).
ROLES = {"viewer": "viewer-secret", "operator": "operator-secret", "backend": "backend-secret"}
STACK: dict[str, Any] = dict(with_logsink=False, gateway={
        "api_tokens": (*TOKENS, *(f"{role}:{secret}" for role, secret in ROLES.items())),
        "max_streams_per_client": 2, "submit_rate": 1.0,
        "cors_origins": ("http://app.example",),
    })



PROTECTED = [("GET", "/api/jobs"), ("POST", "/api/jobs"), ("GET", "/api/jobs/x1"), ("GET", "/api/jobs/x1/events"),
             ("GET", "/api/events"), ("GET", "/api/logs/stream"), ("POST", "/api/uploads"), ("GET", "/api/types"),
             ("POST", "/api/jobs/x1/cancel"), ("GET", "/api/jobs/x1/timeline"), ("POST", "/api/stream-tokens")]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_every_api_route_needs_a_token(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    wrong = await client.request(method, path, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


async def test_health_and_metrics_stay_open_and_a_bearer_token_works(client: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert (await client.get(path)).status_code == 200
    assert (await client.get("/api/types", headers=BEARER)).status_code == 200
    response = await client.post("/api/jobs", json={"type": "noop"}, headers=BEARER)
    assert response.status_code == 202


async def test_the_browser_signs_in_once_and_event_streams_carry_the_cookie(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/session", json={"token": "wrong"})).status_code == 401
    job_id = (await client.post("/api/jobs", json={"type": "noop"}, headers=BEARER)).json()["id"]
    signed_in = await client.post("/api/session", json={"token": TOKENS[0]})
    assert signed_in.status_code == 204
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    events = await read_sse(client, f"/api/jobs/{job_id}/events")  # the client keeps the cookie
    assert events[0].event == "snapshot"


async def test_a_stream_token_reads_streams_but_writes_nothing(client: httpx.AsyncClient, stack: Stack) -> None:
    job_id = (await client.post("/api/jobs", json={"type": "noop"}, headers=BEARER)).json()["id"]
    token = (await client.post("/api/stream-tokens", headers=BEARER)).json()["token"]
    async with httpx.AsyncClient(base_url=stack.url, timeout=20) as anonymous:
        events = await read_sse(anonymous, f"/api/jobs/{job_id}/events?access_token={token}")
        assert events[0].event == "snapshot"
        write = await anonymous.post(f"/api/jobs?access_token={token}", json={"type": "noop"})
        assert write.status_code == 403
        forged = await anonymous.get(f"/api/jobs?access_token={token[:-2]}xx")
        assert forged.status_code == 401
        for garbled in (f"{token[:-2]}ü", "é.ü", f"{token}\u2603"):  # (text beyond ASCII: refused, never a 500)
            answer = await anonymous.get("/api/jobs", params={"access_token": garbled})
            assert answer.status_code == 401, (garbled, answer.text)
            cookie = await anonymous.get("/api/jobs", headers={"Cookie": f"jobline_session={garbled}".encode()})
            assert cookie.status_code == 401, cookie.text


async def test_a_token_for_some_jobs_reads_those_and_nothing_else(client: httpx.AsyncClient, stack: Stack) -> None:
    from websockets.asyncio.client import connect

    own = {"Authorization": f"Bearer {TOKENS[0]}"}  # (its own submit budget: other tests spend BEARER's)
    mine, other = [(await client.post("/api/jobs", json={"type": "noop"}, headers=own)).json()["id"] for _ in range(2)]
    for job_id in (mine, other):
        await read_sse(client, f"/api/jobs/{job_id}/events", headers=own)
    minted = await client.post("/api/stream-tokens", json={"jobs": [mine]}, headers=own)
    assert minted.status_code == 201 and minted.json()["jobs"] == [mine]
    token = minted.json()["token"]
    for bad in ([], ["not an id!"], ["a"] * 51):
        refused = await client.post("/api/stream-tokens", json={"jobs": bad}, headers=own)
        assert refused.status_code == 422, (bad, refused.text)
    async with httpx.AsyncClient(base_url=stack.url, timeout=20) as page:
        async def get(path: str, query: str = "") -> httpx.Response:
            return await page.get(f"{path}?access_token={token}{query}")

        assert (await get(f"/api/jobs/{mine}")).json()["status"] == "completed"
        assert (await get(f"/api/jobs/{mine}/timeline")).status_code == 200
        assert (await read_sse(page, f"/api/jobs/{mine}/events?access_token={token}"))[0].event == "snapshot"
        for path in (f"/api/jobs/{other}", f"/api/jobs/{other}/events", f"/api/jobs/{other}/timeline",
                     f"/api/jobs/{other}/logs", f"/api/jobs/{other}/artifacts/out.mp4"):
            answer = await get(path)  # as if it did not exist: an id guessed or copied tells nothing
            assert answer.status_code == 404 and answer.headers["content-type"].startswith("application/problem+json"), path
        for path, query in (("/api/jobs", ""), ("/api/events", ""), ("/api/events", f"&jobs={mine}&firehose=1"),
                            ("/api/logs/stream", ""), ("/api/batches", ""), ("/api/stats/counts", ""),
                            ("/api/schedules", ""), ("/api/queues", "")):
            assert (await get(path, query)).status_code == 403, (path, query)
        assert (await get("/api/events", f"&jobs={mine},{other}")).status_code == 404
        async with page.stream("GET", f"/api/events?jobs={mine}&access_token={token}") as stream:
            assert stream.status_code == 200
            async for line in stream.aiter_lines():
                if line.startswith("data: "):
                    assert [job["id"] for job in json.loads(line[6:])["jobs"]] == [mine]
                    break
        payload, _, signature = token.partition(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        widened = base64.urlsafe_b64encode(json.dumps({**claims, "j": [mine, other]}).encode()).decode().rstrip("=")
        assert (await page.get(f"/api/jobs/{other}?access_token={widened}.{signature}")).status_code == 401
    async with connect(stack.url.replace("http://", "ws://") + f"/ws?access_token={token}") as ws:
        for request in ({"op": "subscribe", "id": "b", "jobs": [other]}, {"op": "subscribe", "firehose": True}):
            await ws.send(json.dumps(request))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "error", request
        await ws.send(json.dumps({"op": "subscribe", "id": "a", "jobs": [mine]}))
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert frame["sub"] == "a" and frame["type"] == "snapshot", frame


async def test_a_token_for_an_owner_reads_that_owners_jobs_only(client: httpx.AsyncClient, stack: Stack) -> None:
    from websockets.asyncio.client import connect

    own = {"Authorization": f"Bearer {TOKENS[0]}"}
    alices, bobs = [], []
    for owner, ids in (("alice", alices), ("bob", bobs), ("alice", alices)):
        answer = await client.post("/api/jobs", json={"type": "noop", "owner": owner}, headers=own)
        ids.append(answer.json()["id"])
    for job_id in alices + bobs:
        await read_sse(client, f"/api/jobs/{job_id}/events", headers=own)
    minted = await client.post("/api/stream-tokens", json={"owner": "alice"}, headers=own)
    assert minted.status_code == 201 and minted.json()["owner"] == "alice"
    token = minted.json()["token"]
    for bad in ({"owner": "not an owner"}, {"owner": "alice", "jobs": [alices[0]]}):
        assert (await client.post("/api/stream-tokens", json=bad, headers=own)).status_code == 422, bad
    async with httpx.AsyncClient(base_url=stack.url, timeout=20) as page:
        async def get(path: str, query: str = "") -> httpx.Response:
            return await page.get(f"{path}?access_token={token}{query}")

        for job_id in alices:
            assert (await get(f"/api/jobs/{job_id}")).json()["owner"] == "alice"
            assert (await get(f"/api/jobs/{job_id}/timeline")).status_code == 200
        assert (await read_sse(page, f"/api/jobs/{alices[0]}/events?access_token={token}"))[0].event == "snapshot"
        for path in (f"/api/jobs/{bobs[0]}", f"/api/jobs/{bobs[0]}/events", f"/api/jobs/{bobs[0]}/timeline",
                     f"/api/jobs/{bobs[0]}/logs", f"/api/jobs/{bobs[0]}/state"):
            assert (await get(path, "&at=1")).status_code == 404, path
        listed = await get("/api/jobs")
        assert listed.status_code == 200 and {j["id"] for j in listed.json()["jobs"]} == set(alices)
        assert [j["id"] for j in (await get("/api/jobs", "&owner=bob")).json()["jobs"]] == list(reversed(alices))
        assert (await get("/api/events", f"&jobs={alices[0]},{bobs[0]}")).status_code == 404
        for path, query in (("/api/events", ""), ("/api/batches", ""), ("/api/logs/stream", "")):
            assert (await get(path, query)).status_code == 403, path
        counted = (await get("/api/stats/counts", "&owner=bob")).json()  # (its owner's, whatever it asks)
        assert counted["total"] == len(alices), counted
        activity = (await get("/api/stats/activity", "&owner=bob")).json()  # (the same)
        assert sum(sum(b[s] for s in ("completed", "failed", "cancelled", "expired")) for b in activity["buckets"]) \
            == len(alices), activity
    async with connect(stack.url.replace("http://", "ws://") + f"/ws?access_token={token}") as ws:
        await ws.send(json.dumps({"op": "subscribe", "id": "b", "jobs": [bobs[0]]}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "error"
        await ws.send(json.dumps({"op": "subscribe", "id": "a", "jobs": alices}))
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert frame["sub"] == "a" and frame["type"] == "snapshot", frame


async def test_each_role_does_what_it_may_and_operators_changes_are_recorded(
        client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="jobline.gateway.audit")
    as_role = {role: {"Authorization": f"Bearer {secret}"} for role, secret in ROLES.items()}
    sessions = {role: (await client.get("/api/session", headers=h)).json() for role, h in as_role.items()}
    assert sessions["viewer"] == {"auth": True, "role": "viewer", "can": ["read"]}
    assert sessions["operator"]["can"] == ["read", "operate"] and sessions["backend"]["can"] == ["read", "submit"]
    assert (await client.get("/api/session", headers=BEARER)).json()["role"] == "admin"  # a token without a role
    job_id = (await client.post("/api/jobs", json={"type": "noop"}, headers=as_role["backend"])).json()["id"]
    expected = {  # (method, path): the statuses of viewer, operator, backend
        ("GET", f"/api/jobs/{job_id}"): (200, 200, 200),
        ("GET", "/api/jobs"): (200, 200, 200),
        ("POST", "/api/stream-tokens"): (201, 201, 201),
        ("POST", "/api/jobs"): (403, 403, 202),
        ("POST", "/api/form-tokens"): (403, 403, 201),
        ("POST", "/api/queues/noop/pause"): (403, 200, 403),
        ("POST", "/api/queues/noop/resume"): (403, 200, 403),
        ("POST", f"/api/jobs/{job_id}/cancel"): (403, 409, 409),  # (operator and backend may: the job had ended)
    }
    await read_sse(client, f"/api/jobs/{job_id}/events", headers=BEARER)
    for (method, path), statuses in expected.items():
        body = {"type": "noop"} if path == "/api/jobs" else None
        got = tuple([(await client.request(method, path, json=body, headers=as_role[role])).status_code
                     for role in ("viewer", "operator", "backend")])
        assert got == statuses, (method, path, got)
    audit = [r.getMessage() for r in caplog.records if r.name == "jobline.gateway.audit"]
    assert any("role=operator POST /api/queues/noop/pause -> 200" in line for line in audit), audit
    assert not any("secret" in line for line in audit)
    assert not any("role=backend POST /api/jobs " in line for line in audit)  # submissions are not operations


@pytest.mark.slow
async def test_the_dashboard_shows_the_role_and_hides_what_it_may_not_do(stack: Stack) -> None:
    from playwright.async_api import expect

    from .browser import chromium

    async with chromium() as browser:
        for role, offered in (("viewer", False), ("operator", False), ("backend", True)):
            context = await browser.new_context()
            page = await context.new_page()
            await page.goto(stack.url + "/")
            await page.fill("#login-token", ROLES[role])
            async with page.expect_navigation():
                await page.click("#login button[type=submit]")
            await expect(page.locator("#role")).to_have_text(role)
            submit_form = page.locator("section[data-needs=submit]")
            await (expect(submit_form).to_be_visible() if offered else expect(submit_form).to_be_hidden())
            await context.close()


async def test_concurrent_streams_per_client_are_capped(client: httpx.AsyncClient) -> None:
    job_id = (await client.post("/api/jobs", json={"type": "demo", "params": {"step_seconds": 3}}, headers=BEARER)).json()["id"]
    opened: list[httpx.Response] = []
    streams = []
    try:
        for _ in range(2):
            stream = client.stream("GET", f"/api/jobs/{job_id}/events", headers=BEARER)
            opened.append(await stream.__aenter__())
            streams.append(stream)
        assert all(r.status_code == 200 for r in opened)
        third = await client.get(f"/api/jobs/{job_id}/events", headers=BEARER)
        assert third.status_code == 429
    finally:
        for stream in streams:
            await stream.__aexit__(None, None, None)


    async def a_slot_is_free_again() -> bool:  # once the server has noticed the closed streams
        async with client.stream("GET", f"/api/jobs/{job_id}/events", headers=BEARER) as again:
            return again.status_code == 200

    await eventually(a_slot_is_free_again, what="the stream cap to count the closed streams")


async def test_job_creation_is_rate_limited_with_retry_after(client: httpx.AsyncClient) -> None:
    statuses = [(await client.post("/api/jobs", json={"type": "noop"}, headers=BEARER)) for _ in range(14)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and int(limited[0].headers["retry-after"]) >= 1


async def test_cors_admits_only_the_configured_origin(client: httpx.AsyncClient) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    good = await client.options("/api/jobs", headers={"Origin": "http://app.example", **preflight})
    assert good.headers.get("access-control-allow-origin") == "http://app.example"
    assert good.headers.get("access-control-allow-origin") != "*"
    bad = await client.options("/api/jobs", headers={"Origin": "http://evil.example", **preflight})
    assert bad.headers.get("access-control-allow-origin") != "http://evil.example"


@pytest.mark.slow
async def test_the_web_ui_signs_in_and_streams_with_its_cookie(stack: Stack) -> None:
    from playwright.async_api import expect

    from .browser import chromium

    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(stack.url + "/")
        await expect(page.locator("#login")).to_be_visible()
        await page.fill("#login-token", TOKENS[0])
        await page.click("#login button")
        await expect(page.locator("#job-type option", has_text="demo")).to_have_count(1)
        await expect(page.locator("#login")).to_be_hidden()
        await page.get_by_label("step_seconds").fill("0.05")  # the form's fields, drawn from the params schema
        await page.get_by_label("ticks_per_step").fill("2")
        await page.click("#submit")
        await expect(page.locator("#job-status")).to_have_text("completed", timeout=15_000)
        await expect(page.locator("#connection")).to_have_text("live")


async def test_the_websocket_needs_a_token_too(stack: Stack) -> None:
    import json

    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    url = stack.url.replace("http://", "ws://") + "/ws"
    with pytest.raises((ConnectionClosed, InvalidStatus)):
        async with connect(url) as ws:
            await ws.send(json.dumps({"op": "subscribe", "firehose": True}))
            await asyncio.wait_for(ws.recv(), 5)
    async with connect(url, additional_headers=BEARER) as ws:
        await ws.send(json.dumps({"op": "subscribe", "firehose": True}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "snapshot"


# --- limits counted as what they limit (jobs, streams), and credentials never logged ---------------
async def test_job_creation_is_limited_by_jobs_not_requests(client: httpx.AsyncClient, stack: Stack,
                                                            js: JetStreamContext) -> None:
    jobs_before = (await js.stream_info(stack.names.jobs_stream)).state.messages
    batch = await client.post("/api/batches", json={"jobs": [{"type": "noop"}] * 2000}, headers=BEARER)
    assert batch.status_code == 429 and batch.json()["errors"][0]["key"] == "jobs"  # more than a burst, ever
    flow = await client.post("/api/flows", headers=BEARER, json={
        "job": {"type": "noop"}, "children": [{"job": {"type": "noop"}, "name": f"c{i}"} for i in range(40)]})
    assert flow.status_code == 429
    # A burst of the rate (1/s) is 10 jobs: a batch of 8 passes, then another of 8 must wait.
    assert (await client.post("/api/batches", json={"jobs": [{"type": "noop"}] * 8}, headers=BEARER)).status_code == 202
    later = await client.post("/api/batches", json={"jobs": [{"type": "noop"}] * 8}, headers=BEARER)
    assert later.status_code == 429 and int(later.headers["retry-after"]) >= 1
    assert (await js.stream_info(stack.names.jobs_stream)).state.messages - jobs_before < 2000


@pytest.mark.parametrize("query", ["follow=true", "%66ollow=1", "follow=True"])
async def test_a_log_follow_is_a_stream_however_it_is_spelled(client: httpx.AsyncClient, query: str) -> None:
    job_id = (await client.post("/api/jobs", json={"type": "demo", "params": {"step_seconds": 3}},
                                headers=BEARER)).json()["id"]
    streams = [client.stream("GET", f"/api/jobs/{job_id}/logs?{query}", headers=BEARER) for _ in range(3)]
    opened = []
    try:
        for stream in streams:
            opened.append(await stream.__aenter__())
        assert [r.status_code for r in opened] == [200, 200, 429]  # the cap is 2 (this module's STACK)
    finally:
        for stream in streams[:len(opened)]:
            await stream.__aexit__(None, None, None)


async def test_websocket_subscriptions_count_against_the_stream_cap(stack: Stack) -> None:
    import json

    from websockets.asyncio.client import connect

    url = stack.url.replace("http://", "ws://") + "/ws"
    async with connect(url, additional_headers=BEARER) as ws:
        replies = []
        for name in ("a", "b", "c"):
            await ws.send(json.dumps({"op": "subscribe", "id": name, "firehose": True}))
            replies.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        assert [r["type"] for r in replies] == ["snapshot", "snapshot", "error"]
        assert "streams" in replies[2]["detail"]
        await ws.send(json.dumps({"op": "unsubscribe", "id": "a"}))  # frees its stream
        await ws.send(json.dumps({"op": "subscribe", "id": "c", "firehose": True}))
        while (reply := json.loads(await asyncio.wait_for(ws.recv(), 5)))["type"] == "event":
            pass
        assert reply["type"] == "snapshot" and reply["sub"] == "c"


async def test_a_token_for_a_tag_reads_the_jobs_carrying_it(client: httpx.AsyncClient, stack: Stack) -> None:
    from jobline.client import AsyncClient

    own = {"Authorization": f"Bearer {TOKENS[0]}"}
    tagged, untagged = [(await client.post("/api/jobs", json={"type": "noop", "tags": tags}, headers=own)).json()["id"]
                        for tags in (["launch", "eu"], ["eu"])]
    for job_id in (tagged, untagged):
        await read_sse(client, f"/api/jobs/{job_id}/events", headers=own)
    async with AsyncClient(stack.url, token=TOKENS[0]) as jobline:
        token = await jobline.stream_token(tags=["launch"])
    async with httpx.AsyncClient(base_url=stack.url, timeout=20) as page:
        assert (await page.get(f"/api/jobs/{tagged}?access_token={token}")).status_code == 200
        assert (await page.get(f"/api/jobs/{untagged}?access_token={token}")).status_code == 404
        listed = (await page.get(f"/api/jobs?tag=eu&access_token={token}")).json()["jobs"]
        assert [job["id"] for job in listed] == [tagged]  # (narrowed to its tag, whatever is asked)
        assert (await page.get(f"/api/events?access_token={token}")).status_code == 403
    refused = await client.post("/api/stream-tokens", json={"jobs": [tagged], "tags": ["eu"]}, headers=own)
    assert refused.status_code == 422


async def test_a_form_token_made_for_an_owner_makes_that_owners_jobs(client: httpx.AsyncClient, stack: Stack) -> None:
    own = {"Authorization": f"Bearer {TOKENS[0]}"}
    minted = await client.post("/api/form-tokens", json={"owner": "carol"}, headers=own)
    assert minted.status_code == 201 and minted.json()["owner"] == "carol"
    assert (await client.post("/api/form-tokens", json={"owner": "no one"}, headers=own)).status_code == 422
    async with httpx.AsyncClient(base_url=stack.url, timeout=20) as page:
        answer = await page.post(f"/api/jobs?access_token={minted.json()['token']}", headers={"Accept": "application/json"},
                                 files={"type": (None, "noop"), "owner": (None, "mallory")})  # (a claim it cannot make)
    assert answer.status_code == 202, answer.text
    state = (await client.get(f"/api/jobs/{answer.json()['id']}", headers=own)).json()
    assert state["owner"] == "carol"


async def test_a_websocket_with_a_form_token_is_refused_cleanly(client: httpx.AsyncClient, stack: Stack) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    token = (await client.post("/api/form-tokens", headers=BEARER)).json()["token"]
    url = stack.url.replace("http://", "ws://") + f"/ws?access_token={token}"
    with pytest.raises((ConnectionClosed, InvalidStatus)) as refused:
        async with connect(url) as ws:
            await asyncio.wait_for(ws.recv(), 5)
    status = getattr(getattr(refused.value, "response", None), "status_code", None)
    assert status in (None, 403), status  # closed before it was accepted: never a 500


async def test_no_credential_reaches_the_service_logs(client: httpx.AsyncClient, stack: Stack, nc: Client,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    from websockets.asyncio.client import connect

    caplog.set_level(logging.INFO)  # (as a service process logs: uvicorn's handshake records are INFO)
    records: list[bytes] = []

    async def keep(msg: Msg) -> None:
        records.append(msg.data)

    subscription = await nc.subscribe(f"{stack.names.service_log('gateway', 'info').rsplit('.', 1)[0]}.>", cb=keep)
    try:
        token = (await client.post("/api/stream-tokens", headers=BEARER)).json()["token"]
        url = stack.url.replace("http://", "ws://") + f"/ws?access_token={token}"
        async with connect(url) as ws:
            await ws.send('{"op": "subscribe", "firehose": true}')
            await asyncio.wait_for(ws.recv(), 5)
        logging.getLogger("jobline.gateway.test").info("after the handshake: Bearer %s", TOKENS[0])
        await eventually(lambda: _async(any(b"after the handshake" in r for r in records)), 10, "the marker record")
    finally:
        await subscription.unsubscribe()
    logged = b"\n".join(records)
    assert b"WebSocket /ws" in logged  # (uvicorn logged the handshake: the record whose query is at stake)
    assert token.encode() not in logged and TOKENS[0].encode() not in logged
    assert b"access_token=[redacted]" in logged


async def _async(value: bool) -> bool:
    return value


async def test_cors_responses_vary_by_origin_and_expose_what_clients_read(client: httpx.AsyncClient) -> None:
    for response in (await client.get("/api/types", headers=BEARER), await client.get("/api/types"),
                     await client.get("/healthz")):
        assert "origin" in response.headers.get("vary", "").lower(), response.headers
    cross = await client.get("/api/types", headers={**BEARER, "Origin": "http://app.example"})
    exposed = {h.strip().lower() for h in cross.headers.get("access-control-expose-headers", "").split(",")}
    assert {"retry-after", "content-range", "idempotent-replayed", "location", "etag"} <= exposed, cross.headers
