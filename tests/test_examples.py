"""The examples run as a user would run them."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from .helpers import Stack, wait_for_job_type
from .test_clients_web import make_clip

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
async def test_the_backend_example_uploads_watches_and_downloads(stack: Stack, js: JetStreamContext,
                                                                  tmp_path: Path) -> None:
    await wait_for_job_type(js, stack.names, "video-transcode")
    clip = make_clip(tmp_path / "clip.mp4")
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "examples/backend.py"), str(clip), "--height", "120", "--out", str(tmp_path / "out"),
        env={"JOBLINE_URL": stack.url, "PATH": "/usr/bin:/bin", "COLUMNS": "100"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    assert "saved video.mp4" in out.decode()
    saved = tmp_path / "out" / "video.mp4"
    assert saved.stat().st_size > 1000 and saved.read_bytes()[4:8] == b"ftyp"
