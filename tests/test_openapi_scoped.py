"""schemathesis once more, as a page of one owner would call the API: every request carries a
stream token scoped to owner A (`?access_token=`, with the rights to submit, cancel and signal), job
ids are drawn from a dictionary holding A's and B's jobs (a script that guesses B's ids), and
afterwards no recorded response may carry any of B's jobs. The same checks as test_openapi.py: no
5xx, every answer documented (401/403/404 for what the scope does not cover)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from .helpers import Stack, read_sse
from .test_openapi import schemathesis

ADMIN = "scoped-schemathesis-admin"
STACK: dict[str, Any] = dict(gateway={"api_tokens": (ADMIN,), "max_delay_s": 2.0, "max_wait_s": 1.0})
OWNER_A, OWNER_B = "owner-alpha", "owner-bravo"


async def jobs_of(client: httpx.AsyncClient, owner: str, tag: str) -> list[str]:
    made = []
    for spec in ({"type": "noop"}, {"type": "demo", "params": {"steps": ["A"], "step_seconds": 0.01}}):
        answer = await client.post("/api/jobs", json={**spec, "owner": owner, "tags": [tag]})
        assert answer.status_code == 202, answer.text
        made.append(str(answer.json()["id"]))
        await read_sse(client, f"/api/jobs/{made[-1]}/events")
    return made


def responses(har: Path) -> list[tuple[int, str]]:
    """Every response a HAR report recorded: its status and body."""
    entries = json.loads(har.read_text())["log"]["entries"]
    return [(int(e["response"]["status"]), str(e["response"].get("content", {}).get("text") or "")) for e in entries]


def leaks(status: int, body: str, owner: str, tag: str, ids: list[str]) -> bool:
    """Whether an answer tells anything of another owner's jobs (a 404 may repeat the id asked for)."""
    if owner in body or tag in body:
        return True
    return status != 404 and any(job_id in body for job_id in ids)


@pytest.mark.slow
@pytest.mark.timeout(330)  # (schemathesis has its own bound, 300 s)
async def test_schemathesis_with_an_owner_token_reads_and_writes_nothing_of_another_owner(
        stack: Stack, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=30, headers={"Authorization": f"Bearer {ADMIN}"}) as admin:
        alphas = await jobs_of(admin, OWNER_A, "alpha-tag")
        bravos = await jobs_of(admin, OWNER_B, "bravo-tag")
        minted = await admin.post("/api/stream-tokens", json={"owner": OWNER_A, "rights": ["submit", "cancel", "signal"],
                                                              "expires_in": 3600})
        assert minted.status_code == 201, minted.text
        token = minted.json()["token"]
    config = tmp_path / "schemathesis.toml"
    config.write_text("\n".join([
        "[auth.openapi.accessToken]", f"api_key = {json.dumps(token)}",
        "[dictionaries.jobs]", f"values = {json.dumps([*alphas, *bravos])}",
        "[parameters]", '"path.job_id" = { dictionary = "jobs", probability = 0.9 }', ""]))
    # (no coverage phase: its boundary values of every parameter are test_openapi.py's, without a token; here
    # what counts is many requests with the scope: generated ones, and the stateful phase's chains of them)
    text = await schemathesis(stack.url, tmp_path, "--phases", "fuzzing,stateful", "--max-examples", "30",
                              "--seed", "20261207", "--report", "har", config=config)
    reports = await asyncio.to_thread(lambda: sorted(tmp_path.glob("har*")))
    assert reports, f"no HAR report in {tmp_path}: {text[-2000:]}"
    answers = [answer for report in reports for answer in responses(report)]
    assert len(answers) > 200, len(answers)
    leaked = [f"{status}: {body[:300]}" for status, body in answers if leaks(status, body, OWNER_B, "bravo-tag", bravos)]
    assert not leaked, leaked
    # Not vacuous: the same run read the owner's own jobs (lists, states) and asked for the other's.
    assert any(job in body for status, body in answers if status == 200 for job in alphas), "no answer had an own job"
    assert sum(1 for status, body in answers if status == 404 and any(j in body for j in bravos)) > 0
