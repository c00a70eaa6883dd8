"""Uploads, artifacts and the real `video-transcode` job, on a clip ffmpeg generates."""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import imageio_ffmpeg
import pytest
from nats.js import JetStreamContext

from .helpers import Stack, outcome, read_sse
from .oracle import check_timeline, read_timeline

pytestmark = pytest.mark.slow
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def make_clip(path: Path, seconds: float, size: str = "320x240") -> Path:
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", f"testsrc=duration={seconds}:size={size}:rate=25", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def describe(path: Path) -> tuple[float, int, int]:
    """(duration, width, height) of a video, by decoding it with ffmpeg."""
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    assert frames > 0
    info = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    match = re.search(r"Video: h264.*?(\d{2,5})x(\d{2,5})", info)
    assert match, info
    return seconds, int(match.group(1)), int(match.group(2))


# The services this module's tests run against (conftest.py's `stack`).
STACK: dict[str, Any] = dict(with_logsink=False,
                             gateway={"max_upload_bytes": 5_000_000})



async def upload(client: httpx.AsyncClient, path: Path) -> dict[str, object]:
    response = await client.post("/api/uploads", params={"filename": path.name}, content=await asyncio.to_thread(path.read_bytes),
                                 headers={"content-type": "video/mp4"})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_an_uploaded_clip_is_transcoded_with_progress_and_its_results_play(
    client: httpx.AsyncClient, js: JetStreamContext, stack: Stack, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "clip.mp4", 3)
    stored = await upload(client, clip)
    assert stored["size"] == clip.stat().st_size and stored["filename"] == "clip.mp4"
    response = await client.post("/api/jobs", json={"type": "video-transcode", "params": {"upload": stored["id"], "height": 120}})
    assert response.status_code == 202
    job_id = response.json()["id"]
    events = await read_sse(client, f"/api/jobs/{job_id}/events", timeout=60)
    assert outcome(events) == "completed"
    timeline = await read_timeline(js, stack.names, job_id)
    check_timeline(timeline)
    assert [r.event.name for r in timeline if r.kind == "step_started"] == [  # type: ignore[union-attr]
        "Upload", "Probe", "Transcode", "Thumbnail", "Done"]
    assert any(r.kind == "progressed" and r.event.message == "transcoding" for r in timeline)  # type: ignore[union-attr]

    state = (await client.get(f"/api/jobs/{job_id}")).json()
    assert {a["name"] for a in state["artifacts"]} == {"video.mp4", "thumbnail.jpg"}
    video = await client.get(f"/api/jobs/{job_id}/artifacts/video.mp4")
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert video.headers["x-content-type-options"] == "nosniff"
    assert video.headers["content-disposition"].startswith("inline")
    out = tmp_path / "out.mp4"
    out.write_bytes(video.content)
    seconds, width, height = describe(out)
    assert abs(seconds - 3.0) < 0.2 and height == 120 and width == 160
    assert video.headers["accept-ranges"] == "bytes"
    size = len(video.content)
    part = await client.get(f"/api/jobs/{job_id}/artifacts/video.mp4", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == video.content[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{size}"
    tail = await client.get(f"/api/jobs/{job_id}/artifacts/video.mp4", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == video.content[-10:]
    beyond = await client.get(f"/api/jobs/{job_id}/artifacts/video.mp4", headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{size}"
    # If-Range (RFC 9110, 13.1.5): the range only while the file is the one the validator names.
    etag = video.headers["etag"]
    same = await client.get(f"/api/jobs/{job_id}/artifacts/video.mp4", headers={"Range": "bytes=0-9", "If-Range": etag})
    assert same.status_code == 206 and same.content == video.content[:10]
    for validator in ('"another"', "Wed, 21 Oct 2015 07:28:00 GMT"):
        stale = await client.get(f"/api/jobs/{job_id}/artifacts/video.mp4",
                                 headers={"Range": "bytes=0-9", "If-Range": validator})
        assert stale.status_code == 200 and stale.content == video.content, validator
    head = await client.head(f"/api/jobs/{job_id}/artifacts/video.mp4")
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(size)
    thumb = await client.get(f"/api/jobs/{job_id}/artifacts/thumbnail.jpg")
    assert thumb.headers["content-type"] == "image/jpeg" and thumb.content[:2] == b"\xff\xd8"
    assert (await client.get(f"/api/jobs/{job_id}/artifacts/nope.bin")).status_code == 404


async def test_video_renditions_transcodes_three_heights_as_children_and_writes_their_master_playlist(
    client: httpx.AsyncClient, js: JetStreamContext, stack: Stack, tmp_path: Path
) -> None:
    stored = await upload(client, make_clip(tmp_path / "clip.mp4", 2))
    response = await client.post("/api/jobs", json={"type": "video-renditions", "params": {"upload": stored["id"]}})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert outcome(await read_sse(client, f"/api/jobs/{job_id}/events", timeout=120)) == "completed"
    state = (await client.get(f"/api/jobs/{job_id}")).json()
    assert [c["name"] for c in state["children"]] == ["240p", "480p", "720p"]
    timeline = await read_timeline(js, stack.names, job_id)
    check_timeline(timeline)
    assert [r.kind for r in timeline if r.kind in ("started", "suspended")] == ["started", "suspended", "started"]
    master = await client.get(f"/api/jobs/{job_id}/artifacts/master.m3u8")
    assert master.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    lines = master.text.splitlines()
    assert lines[0] == "#EXTM3U"
    for child in state["children"]:
        height = int(child["name"][:-1])
        playlist_url = f"/api/jobs/{child['id']}/artifacts/video.m3u8"
        info = lines[lines.index(playlist_url) - 1]
        assert info.startswith("#EXT-X-STREAM-INF:BANDWIDTH=") and f"x{height}" in info
        media = (await client.get(playlist_url)).text
        assert '#EXT-X-MAP:URI="video.mp4"' in media and "#EXT-X-ENDLIST" in media
        # The media playlist addresses byte ranges of the one MP4: each is served as asked.
        length, offset = map(int, re.search(r"#EXT-X-BYTERANGE:(\d+)@(\d+)", media).groups())  # type: ignore[union-attr]
        video = await client.get(f"/api/jobs/{child['id']}/artifacts/video.mp4")
        segment = await client.get(f"/api/jobs/{child['id']}/artifacts/video.mp4",
                                   headers={"Range": f"bytes={offset}-{offset + length - 1}"})
        assert segment.status_code == 206 and segment.content == video.content[offset:offset + length]
        out = tmp_path / f"{height}.mp4"
        out.write_bytes(video.content)
        seconds, width, decoded_height = describe(out)
        assert decoded_height == height and width == height * 4 // 3 and abs(seconds - 2.0) < 0.3
    tree = (await client.get(f"/api/flows/{job_id}")).json()
    assert tree["rollup"] == 1.0 and {c["status"] for c in tree["children"]} == {"completed"}


async def test_an_upload_over_the_limit_gets_413_and_leaves_nothing(
    client: httpx.AsyncClient, js: JetStreamContext, stack: Stack
) -> None:
    async def body() -> AsyncIterator[bytes]:  # no Content-Length: the limit is enforced as it streams
        for _ in range(12):
            yield b"x" * 500_000

    response = await client.post("/api/uploads", content=body())
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    declared = await client.post("/api/uploads", content=b"x" * 5_000_001)
    assert declared.status_code == 413
    store = await js.object_store(stack.names.uploads_bucket)
    assert not [o for o in await _list(store) if not o.deleted]


async def _list(store):
    try:
        return await store.list()
    except Exception:  # nats-py raises NotFoundError for an empty bucket
        return []


async def test_cancelling_a_transcode_kills_ffmpeg_and_removes_its_partial_output(
    client: httpx.AsyncClient, js: JetStreamContext, stack: Stack, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "long.mp4", 60, "1280x720")
    stored = await upload(client, clip)
    job_id = (await client.post("/api/jobs", json={"type": "video-transcode",
                                                  "params": {"upload": stored["id"], "height": 720}})).json()["id"]
    import asyncio

    async with asyncio.timeout(30), client.stream("GET", f"/api/jobs/{job_id}/events") as response:
        async for line in response.aiter_lines():
            if '"message":"transcoding"' in line:
                break
    workdir = stack.processor_settings.data_dir / "work"
    assert any(p.name == "video.mp4" for p in workdir.rglob("*")), "ffmpeg should be writing its output"
    assert (await client.post(f"/api/jobs/{job_id}/cancel")).status_code == 202
    assert outcome(await read_sse(client, f"/api/jobs/{job_id}/events")) == "cancelled"
    pgrep = await asyncio.create_subprocess_exec("pgrep", "-f", job_id, stdout=asyncio.subprocess.PIPE)
    running = (await pgrep.communicate())[0].decode().split()
    assert running == [], "ffmpeg survived the cancel"
    assert not any(workdir.rglob("*.mp4")), "partial output left behind"
