"""Tokens that act for one owner: an app's backend mints a token for its user that submits (stamped
with the user as owner, of the types it names), cancels and signals that user's jobs and no one
else's; a role grants only what it may do itself; the CLI mints one."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import httpx
from nats.js import JetStreamContext

from jobline.client import AsyncClient

from .helpers import Stack, another_gateway, eventually, read_sse

ADMIN = "scoped-admin-secret"
VIEWER = "scoped-viewer-secret"
BACKEND = "scoped-backend-secret"
# (a submit rate of 1 job/s, bursts of 10: counted per owner for an owner's token)
STACK: dict[str, Any] = dict(with_logsink=False,
                             gateway={"api_tokens": (ADMIN, f"viewer:{VIEWER}", f"backend:{BACKEND}"), "submit_rate": 1.0})
SLOW = {"type": "demo", "params": {"steps": ["S"], "step_seconds": 30}}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def mint(client: httpx.AsyncClient, secret: str, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/api/stream-tokens", json=body, headers=bearer(secret))


async def test_an_owner_token_submits_cancels_and_signals_that_owners_jobs_only(stack: Stack,
                                                                               client: httpx.AsyncClient) -> None:
    minted = await mint(client, BACKEND, {"owner": "alice", "rights": ["submit", "cancel", "signal"],
                                          "types": ["demo", "review"], "expires_in": 600})
    assert minted.status_code == 201, minted.text
    assert minted.json()["rights"] == ["read", "cancel", "signal", "submit"] and minted.json()["expires_in"] == 600
    alice = {"access_token": minted.json()["token"]}
    # Submitted with it: alice's, whatever the body leaves out; claiming another owner is refused.
    mine = await client.post("/api/jobs", params=alice, json=SLOW)
    assert mine.status_code == 202, mine.text
    job_id = mine.json()["id"]
    assert (await client.get(f"/api/jobs/{job_id}", params=alice)).json()["owner"] == "alice"
    claimed = await client.post("/api/jobs", params=alice, json={**SLOW, "owner": "bob"})
    assert claimed.status_code == 403 and "owner alice" in claimed.json()["detail"]
    other_type = await client.post("/api/jobs", params=alice, json={"type": "noop"})
    assert other_type.status_code == 403 and "type" in other_type.json()["detail"]
    # Bob's job: not found to alice's token, for cancel and signal as for reading.
    bobs = (await client.post("/api/jobs", json={**SLOW, "owner": "bob"}, headers=bearer(ADMIN))).json()["id"]
    assert (await client.post(f"/api/jobs/{bobs}/cancel", params=alice)).status_code == 404
    assert (await client.post(f"/api/jobs/{bobs}/signals/go", params=alice, json=1)).status_code == 404
    assert (await client.get(f"/api/jobs/{bobs}", params=alice)).status_code == 404
    # Her own: cancelled.
    cancelled = await client.post(f"/api/jobs/{job_id}/cancel", params=alice)
    assert cancelled.status_code == 202, cancelled.text
    events = await read_sse(client, f"/api/jobs/{job_id}/events", headers=bearer(ADMIN))
    assert events[-1].event == "cancelled"
    # A review of hers waits for her approval, which her token sends.
    review = (await client.post("/api/jobs", params=alice, json={"type": "review", "params": {
        "prepare_seconds": 0.05}})).json()["id"]

    async def waiting() -> bool:
        return bool((await client.get(f"/api/jobs/{review}", params=alice)).json()["status"] == "waiting")

    await eventually(waiting, what="the review waits")
    approved = await client.post(f"/api/jobs/{review}/signals/approval", params=alice, json={"approved": True})
    assert approved.status_code == 202, approved.text
    assert (await read_sse(client, f"/api/jobs/{review}/events", headers=bearer(ADMIN)))[-1].event == "completed"
    # Still nothing else: no batches, no deletes, no queue controls.
    assert (await client.post("/api/batches", params=alice, json={"jobs": [SLOW]})).status_code == 403
    assert (await client.delete(f"/api/jobs/{job_id}", params=alice)).status_code == 403
    assert (await client.post("/api/queues/demo/pause", params=alice)).status_code == 403
    assert (await client.post(f"/api/jobs/{bobs}/cancel", headers=bearer(ADMIN))).status_code == 202


async def test_a_token_grants_only_what_its_maker_may_do_and_reads_only_by_default(
        stack: Stack, client: httpx.AsyncClient) -> None:
    refused = await mint(client, VIEWER, {"owner": "alice", "rights": ["submit"]})
    assert refused.status_code == 403 and "viewer" in refused.json()["detail"]
    for body in ({"rights": ["submit"]}, {"owner": "a", "rights": ["delete"]}, {"jobs": ["x1"], "rights": ["submit"]},
                 {"owner": "a", "types": ["demo"]}, {"owner": "a", "expires_in": 0}):
        answer = await mint(client, ADMIN, body)
        assert answer.status_code == 422, (body, answer.text)
    reader = (await mint(client, VIEWER, {"owner": "alice"})).json()["token"]
    written = await client.post("/api/jobs", params={"access_token": reader}, json=SLOW)
    assert written.status_code == 403
    # Through the client library and the CLI.
    async with AsyncClient(stack.url, token=BACKEND) as backend:
        token = await backend.stream_token(owner="carol", rights=["submit"], types=["demo"])
    made = await client.post("/api/jobs", params={"access_token": token}, json={**SLOW, "params": {"steps": ["S"]}})
    assert made.status_code == 202, made.text
    cli = await asyncio.to_thread(subprocess.run, [
        sys.executable, "-m", "jobline.cli.main", "token", "--url", stack.url, "--token", BACKEND, "--owner", "dave",
        "--rights", "submit,cancel", "--expires-in", "120"], capture_output=True, text=True, timeout=60,
        env={**os.environ})
    assert cli.returncode == 0, cli.stderr
    printed = cli.stdout.strip()
    dave = await client.post("/api/jobs", params={"access_token": printed}, json={"type": "noop"})
    assert dave.status_code == 202, dave.text
    assert (await client.get(f"/api/jobs/{dave.json()['id']}", headers=bearer(ADMIN))).json()["owner"] == "dave"


async def test_each_owners_token_has_its_own_submit_rate_across_gateways(stack: Stack, client: httpx.AsyncClient,
                                                                        js: JetStreamContext) -> None:
    tokens = {owner: (await mint(client, BACKEND, {"owner": owner, "rights": ["submit"]})).json()["token"]
              for owner in ("erin", "frank")}
    async with another_gateway(stack) as (url, _), httpx.AsyncClient(base_url=url, timeout=20) as second:
        # Erin's burst of 10 spread over both gateways, then the 11th on either is refused: the broker
        # counts an owner's submissions, not each gateway (two gateways would allow twice the rate).
        codes = [(await (client, second)[i % 2].post("/api/jobs", params={"access_token": tokens["erin"]},
                                                     json={"type": "noop"})).status_code for i in range(10)]
        assert codes == [202] * 10, codes
        for gateway in (client, second):
            refused = await gateway.post("/api/jobs", params={"access_token": tokens["erin"]}, json={"type": "noop"})
            assert refused.status_code == 429, refused.text
            assert 1 <= int(refused.headers["retry-after"]) <= 10, refused.headers
        other = await second.post("/api/jobs", params={"access_token": tokens["frank"]}, json={"type": "noop"})
        assert other.status_code == 202, other.text  # another owner is not held by erin's burst
    # An API token keeps each gateway's own bucket (a backend is not a tenant): not held by erin's.
    assert (await client.post("/api/jobs", json={"type": "noop"}, headers=bearer(BACKEND))).status_code == 202
    # A gateway started with another rate sets the broker's count to it (the burst: ten seconds' worth).
    async with another_gateway(stack, submit_rate=2.0):
        info = await js.stream_info(stack.names.submits_stream)
        assert info.config.max_msgs_per_subject == 20 and info.config.discard_new_per_subject
