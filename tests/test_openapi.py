"""The OpenAPI document says what the server does: schemathesis sends what the document allows
and what it forbids to every finite route of a running gateway, and every answer must match it
(status documented, body valid, no 5xx, bad input refused, good input accepted)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from .helpers import Stack, read_sse, submit

# All services: a 503 would be a failure here. Long-polls (`?wait=`) of at most 1 s and delayed jobs
# at most 2 s ahead (the document says so): a generated job that stays quiet (scheduled for months,
# a paused queue, a long step) would keep a long-poll on it open past the request timeout.
STACK: dict[str, Any] = dict(gateway={"max_delay_s": 2.0, "max_wait_s": 1.0})

# The live streams never end, so a generated request to them would only time out.
ENDLESS = ("/api/events", "/api/logs/stream")
# What a schema cannot say: a flow's names, `depends_on` among siblings, no cycle (its documented
# body is valid JSON Schema, yet a generated one is mostly refused with 422); tests/test_flows.py.
UNSTATABLE = ("/api/flows",)


async def test_errors_are_problems_and_streams_are_event_streams(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/schema/openapi.json")).json()
    assert "Problem" in schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "delete", "patch"} or not path.startswith("/api/"):
                continue
            responses = operation["responses"]
            failures = [status for status in responses if status.startswith("4") or status.startswith("5")]
            assert failures, (method, path)
            for status in failures:
                assert "application/problem+json" in responses[status]["content"], (method, path, status)
            if path.endswith("/events") or path.endswith("/stream"):
                assert "text/event-stream" in responses["200"]["content"], (method, path)
    submission = schema["components"]["schemas"]["JobSubmission"]
    variants = {v["properties"]["type"]["const"]: v for v in submission["oneOf"]}  # one per served type
    assert {"demo", "noop"} <= set(variants) and all(v["additionalProperties"] is False for v in variants.values())
    demo_params = variants["demo"]["properties"]["params"]  # the type's own params schema, its $defs in components
    assert demo_params["$ref"] == "#/components/schemas/params.demo.DemoParams"
    assert schema["components"]["schemas"]["params.demo.DemoParams"]["properties"]["step_seconds"]["type"] == "number"


@pytest.mark.slow
@pytest.mark.timeout(330)  # (schemathesis has its own bound, 300 s; it takes ~55 s alone, ~100 s late in the suite)
async def test_schemathesis_finds_nothing(client: httpx.AsyncClient, stack: Stack, tmp_path: Path) -> None:
    # Real jobs, so that generated requests reach more than 404s (schemathesis reuses ids it sees).
    for job_type in ("noop", "demo"):
        job_id = await submit(client, job_type, {"steps": ["A"], "step_seconds": 0.01} if job_type == "demo" else {})
        await read_sse(client, f"/api/jobs/{job_id}/events")
    # A live stream (a job or a batch that has not ended: the fuzzer pauses queues, delays jobs) is
    # read for half a second, not the whole request timeout: its status, headers and first events
    # are what is checked, and the two took two thirds of this test's time.
    config = tmp_path / "schemathesis.toml"
    config.write_text('[[operations]]\ninclude-path-regex = "/events$"\nrequest-timeout = 0.5\n')
    await schemathesis(stack.url, tmp_path, "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", "20",
                       "--seed", "20261129", "--report", "junit", config=config)


async def schemathesis(url: str, reports: Path, *options: str, config: Path | None = None) -> str:
    """Run schemathesis against the gateway at `url` with every check (what it printed, when it found
    nothing). The live streams and the flows' route are left out (see above); a request is cut at 2 s
    (replays at a tiny speed stream slowly); one worker (two hit CPython 3.11's AST recursion check).
    Give a fixed `--seed`: a red CI must be reproducible (explore wider by hand: docs/api.md)."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")), *(("--config-file", str(config)) if config else ()),
        "run", f"{url}/schema/openapi.json", "--checks", "all", "--workers", "1", "--request-timeout", "2",
        "--generation-database", "none", "--report-dir", str(reports), "--no-color",
        *[arg for path in (*ENDLESS, *UNSTATABLE) for arg in ("--exclude-path", path)], *options,
    ]
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    async with asyncio.timeout(300):
        output, _ = await process.communicate()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
    assert "Tested: " in text and " passed" in text
    return text
