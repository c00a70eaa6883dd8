"""`video-transcode`: an uploaded video to H.264 MP4 at a requested height, plus a thumbnail.

ffmpeg comes from the imageio-ffmpeg wheel (which has no ffprobe: the duration is read from
ffmpeg's own description of the input). Every ffmpeg runs through `ctx.run_process`, so a cancel
or a timeout kills it, and the attempt's workdir (partial output included) is removed.
"""

from __future__ import annotations

import re

import imageio_ffmpeg
import msgspec

from .context import JobContext
from .registry import PermanentError, task

STEPS = ["Upload", "Probe", "Transcode", "Thumbnail", "Done"]
_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO_STREAM = re.compile(r"Stream #\S+.*Video: .*?(\d{2,5})x(\d{2,5})")


class TranscodeParams(msgspec.Struct, kw_only=True):
    upload: str  # the id returned by POST /api/uploads
    height: int = 360
    thumbnail_at_s: float | None = None  # default: the middle of the video

    def __post_init__(self) -> None:
        if not 16 <= self.height <= 4320 or self.height % 2:
            raise msgspec.ValidationError("height must be an even number from 16 to 4320 - at `$.height`")


def parse_duration(ffmpeg_output: str) -> float | None:
    match = _DURATION.search(ffmpeg_output)
    if not match:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@task("video-transcode", params=TranscodeParams, steps=STEPS, max_attempts=2,
      description="Transcodes an uploaded video to H.264 MP4 at the requested height and makes a thumbnail.")
async def transcode(ctx: JobContext) -> dict[str, object]:
    params: TranscodeParams = ctx.params
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()

    ctx.step("Upload")
    source = await ctx.fetch_upload(params.upload, "input")
    ctx.log(f"input: {source.stat().st_size} bytes")

    ctx.step("Probe")
    described: list[str] = []
    try:
        # `-f null` decodes nothing heavy with `-c copy`; ffmpeg describes the input on stderr.
        await ctx.run_process([ffmpeg, "-hide_banner", "-i", str(source), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"],
                              on_error_line=described.append)
    except Exception as exc:
        raise PermanentError(f"not a readable video: {exc}") from exc
    duration = parse_duration("\n".join(described))
    if not duration:
        raise PermanentError("could not find the video's duration")
    ctx.log(f"duration {duration:.2f}s")

    ctx.step("Transcode")
    output = ctx.workdir / "video.mp4"

    def on_progress(line: str) -> None:
        key, _, value = line.partition("=")
        if key == "out_time_us" and value.isdigit():  # microseconds ("N/A" at first)
            ctx.progress(min(int(value) / 1e6, duration), duration, message="transcoding")

    await ctx.run_process([
        ffmpeg, "-hide_banner", "-y", "-i", str(source), "-vf", f"scale=-2:{params.height}",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac",
        "-movflags", "+faststart", "-progress", "pipe:1", "-nostats", str(output),
    ], on_line=on_progress)
    ctx.progress(duration, duration, message="transcoded")

    ctx.step("Thumbnail")
    thumbnail = ctx.workdir / "thumbnail.jpg"
    at = params.thumbnail_at_s if params.thumbnail_at_s is not None else duration / 2
    await ctx.run_process([ffmpeg, "-hide_banner", "-y", "-ss", f"{min(at, max(duration - 0.1, 0)):.3f}", "-i", str(output),
                           "-frames:v", "1", "-q:v", "3", str(thumbnail)])

    ctx.step("Done")
    await ctx.artifact("video.mp4", output, "video/mp4")
    await ctx.artifact("thumbnail.jpg", thumbnail, "image/jpeg")
    ctx.log(f"output: {output.stat().st_size} bytes at height {params.height}")
    return {"duration_s": round(duration, 3), "height": params.height, "size": output.stat().st_size,
            "video": "video.mp4", "thumbnail": "thumbnail.jpg"}
