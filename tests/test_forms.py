"""`POST /api/jobs` as a multipart form: a job and its files in one request, nothing stored unless
the whole form is good."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext

from jobline.contract.names import Names

from .helpers import Stack, wait_for_job_type

LIMIT = 64 * 1024
STACK: dict[str, Any] = dict(gateway={"max_upload_bytes": LIMIT, "cors_origins": ("http://app.example",)},
                             with_logsink=False)


async def stored_uploads(js: JetStreamContext, names: Names) -> int:
    store = await js.object_store(names.uploads_bucket)
    try:
        return len(await store.list(ignore_deletes=True))
    except Exception as exc:  # nats-py raises NotFoundError for an empty store
        if "not found" in str(exc).lower() or type(exc).__name__ == "NotFoundError":
            return 0
        raise


async def job_count(client: httpx.AsyncClient) -> int:
    return len((await client.get("/api/jobs", params={"limit": 500})).json()["jobs"])


@pytest.fixture
async def client(stack: Stack, js: JetStreamContext) -> Any:
    await wait_for_job_type(js, stack.names, "video-transcode")
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as http:
        yield http


async def test_a_form_starts_a_job_with_its_files_and_typed_fields(client: httpx.AsyncClient, stack: Stack,
                                                                   js: JetStreamContext) -> None:
    response = await client.post("/api/jobs", data={"type": "video-transcode", "height": "240", "thumbnail_at_s": ""},
                                 files={"upload": ("clip.mp4", b"\x00" * 5000, "video/mp4")})
    assert response.status_code == 202, response.text
    body = response.json()
    [upload] = body["uploads"]
    assert upload["size"] == 5000 and upload["filename"] == "clip.mp4" and upload["content_type"] == "video/mp4"
    job = (await client.get(f"/api/jobs/{body['id']}")).json()
    # The schema says height is an integer; an empty optional field keeps its default (absent).
    assert job["params"] == {"height": 240, "upload": upload["id"]}
    assert (await client.get(f"/api/uploads/{upload['id']}")).json()["size"] == 5000
    assert await stored_uploads(js, stack.names) == 1


async def test_a_browser_is_redirected_only_where_it_may_go(client: httpx.AsyncClient) -> None:
    html = {"Accept": "text/html,application/xhtml+xml"}
    response = await client.post("/api/jobs", data={"type": "noop"}, files={"x": ("", b"", "application/octet-stream")},
                                 headers=html)
    assert response.status_code == 303 and response.headers["location"].startswith("/#/jobs/")
    response = await client.post("/api/jobs", headers=html, files={"x": ("", b"", "application/octet-stream")},
                                 data={"type": "noop", "redirect": "http://app.example/done/{id}"})
    assert response.status_code == 303 and response.headers["location"].startswith("http://app.example/done/")
    before = await job_count(client)
    # Another site, also as browsers read a path: `\` is `/` to them, tabs and line breaks are dropped.
    for target in ("https://evil.example/{id}", "/\\evil.example/x", "//evil.example/x", "/\tevil", "/\t/evil.example"):
        response = await client.post("/api/jobs", headers=html, files={"x": ("", b"", "application/octet-stream")},
                                     data={"type": "noop", "redirect": target})
        assert response.status_code == 400 and response.json()["errors"][0]["key"] == "redirect", target
        assert response.json()["instance"] == "/api/jobs"  # the path the client posted to, not the routed one
    assert await job_count(client) == before


@pytest.mark.parametrize("fields, key", [
    ({"height": "240"}, "type"),
    ({"type": "video-transcode", "params": "{not json"}, "params"),
    ({"type": "video-transcode", "params": "[1, 2]"}, "params"),
    ({"type": "video-transcode", "height": "tall"}, "height"),
    ({"type": "video-transcode", "max_attempts": "0"}, "max_attempts"),
])
async def test_a_bad_form_is_refused_and_stores_nothing(client: httpx.AsyncClient, stack: Stack, js: JetStreamContext,
                                                        fields: dict[str, str], key: str) -> None:
    before = await job_count(client)
    response = await client.post("/api/jobs", data=fields, files={"upload": ("clip.mp4", b"\x01" * 3000, "video/mp4")})
    assert 400 <= response.status_code < 500 and response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["key"] == key, response.text
    assert await stored_uploads(js, stack.names) == 0
    assert await job_count(client) == before


async def test_a_file_over_the_limit_gets_413_and_stores_nothing(client: httpx.AsyncClient, stack: Stack,
                                                                 js: JetStreamContext) -> None:
    before = await job_count(client)
    response = await client.post("/api/jobs", data={"type": "video-transcode"},
                                 files={"small": ("a.bin", b"a" * 1000, "application/octet-stream"),
                                        "upload": ("big.mp4", b"b" * (LIMIT + 1), "video/mp4")})
    assert response.status_code == 413, response.text
    assert await stored_uploads(js, stack.names) == 0
    assert await job_count(client) == before


async def test_broken_and_foreign_bodies(client: httpx.AsyncClient, stack: Stack, js: JetStreamContext) -> None:
    truncated = b'--xx\r\ncontent-disposition: form-data; name="type"\r\n\r\nnoop'
    response = await client.post("/api/jobs", content=truncated, headers={"content-type": "multipart/form-data; boundary=xx"})
    assert response.status_code == 400 and "multipart" in response.json()["detail"]
    response = await client.post("/api/jobs", content=b"x", headers={"content-type": "multipart/form-data"})
    assert response.status_code == 400 and "boundary" in response.json()["detail"]
    response = await client.post("/api/jobs", content="type=noop", headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 415
    # A page of another site may not post a job form here (its Origin is not allowed).
    response = await client.post("/api/jobs", data={"type": "noop"}, files={"x": ("", b"", "text/plain")},
                                 headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    # The JSON path is unchanged.
    response = await client.post("/api/jobs", json={"type": "noop", "params": {"a": 1}})
    assert response.status_code == 202
    assert await stored_uploads(js, stack.names) == 0
    assert json.loads((await client.get(f"/api/jobs/{response.json()['id']}")).text)["params"] == {"a": 1}


async def test_the_same_idempotency_key_in_a_form_makes_one_job(client: httpx.AsyncClient, stack: Stack,
                                                                js: JetStreamContext) -> None:
    answers = [await client.post("/api/jobs", data={"type": "video-transcode", "idempotency_key": "form-once"},
                                 files={"upload": ("clip.mp4", b"\x02" * 100, "video/mp4")}) for _ in range(2)]
    assert [a.status_code for a in answers] == [202, 202]
    assert answers[0].json()["id"] == answers[1].json()["id"]
    assert answers[1].json()["uploads"] == []  # the second request's file was not kept
    assert await stored_uploads(js, stack.names) == 1
