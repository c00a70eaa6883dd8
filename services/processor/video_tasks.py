"""`video-transcode`: an uploaded video to H.264 MP4 at a requested height, plus a thumbnail
(with `hls`, the MP4 is fragmented and comes with an HLS media playlist over it); and
`video-renditions`: a flow that transcodes an upload into several heights in parallel, as child
jobs, and writes the HLS master playlist that references them.

ffmpeg comes from the imageio-ffmpeg wheel (which has no ffprobe: the duration is read from
ffmpeg's own description of the input). Every ffmpeg runs through `ctx.run_process`, so a cancel
or a timeout kills it, and the attempt's workdir (partial output included) is removed.
"""

from __future__ import annotations

import re
from pathlib import Path

import imageio_ffmpeg
import msgspec

from .context import JobContext, WaitForChildren
from .registry import PermanentError, task

STEPS = ["Upload", "Probe", "Transcode", "Thumbnail", "Done"]
HLS_TYPE = "application/vnd.apple.mpegurl"
_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO_STREAM = re.compile(r"Stream #\S+.*Video: .*?(\d{2,5})x(\d{2,5})")


class TranscodeParams(msgspec.Struct, kw_only=True):
    upload: str  # the id returned by POST /api/uploads
    height: int = 360
    thumbnail_at_s: float | None = None  # default: the middle of the video
    hls: bool = False  # also an HLS media playlist (video.m3u8) over the MP4 (fragmented, byte ranges)

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
    playlist = ctx.workdir / "video.m3u8"
    # HLS: one fragmented MP4 and a playlist of byte ranges in it (a player can still play the MP4).
    container = (["-f", "hls", "-hls_time", "4", "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4",
                  "-hls_flags", "single_file", "-hls_segment_filename", str(output), str(playlist)]
                 if params.hls else ["-movflags", "+faststart", str(output)])

    def on_progress(line: str) -> None:
        key, _, value = line.partition("=")
        if key == "out_time_us" and value.isdigit():  # microseconds ("N/A" at first)
            ctx.progress(min(int(value) / 1e6, duration), duration, message="transcoding")

    await ctx.run_process([
        ffmpeg, "-hide_banner", "-y", "-i", str(source), "-vf", f"scale=-2:{params.height}",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac",
        "-progress", "pipe:1", "-nostats", *container,
    ], on_line=on_progress)
    ctx.progress(duration, duration, message="transcoded")
    width, height = await _dimensions(ctx, ffmpeg, output)

    ctx.step("Thumbnail")
    thumbnail = ctx.workdir / "thumbnail.jpg"
    at = params.thumbnail_at_s if params.thumbnail_at_s is not None else duration / 2
    await ctx.run_process([ffmpeg, "-hide_banner", "-y", "-ss", f"{min(at, max(duration - 0.1, 0)):.3f}", "-i", str(output),
                           "-frames:v", "1", "-q:v", "3", str(thumbnail)])

    ctx.step("Done")
    await ctx.artifact("video.mp4", output, "video/mp4")
    await ctx.artifact("thumbnail.jpg", thumbnail, "image/jpeg")
    result: dict[str, object] = {"duration_s": round(duration, 3), "height": height, "width": width,
                                 "size": output.stat().st_size, "video": "video.mp4", "thumbnail": "thumbnail.jpg"}
    if params.hls:
        await ctx.artifact("video.m3u8", playlist, HLS_TYPE)
        result["playlist"] = "video.m3u8"
    ctx.log(f"output: {output.stat().st_size} bytes at {width}x{height}")
    return result


async def _dimensions(ctx: JobContext, ffmpeg: str, video: Path) -> tuple[int, int]:
    """(width, height) of a video's first video stream, from ffmpeg's description of it."""
    described: list[str] = []
    await ctx.run_process([ffmpeg, "-hide_banner", "-i", str(video), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"],
                          on_error_line=described.append)
    match = _VIDEO_STREAM.search("\n".join(described))
    if not match:
        raise PermanentError("the transcoded video has no video stream")
    return int(match.group(1)), int(match.group(2))


class RenditionsParams(msgspec.Struct, kw_only=True):
    upload: str  # the id returned by POST /api/uploads
    heights: list[int] = msgspec.field(default_factory=lambda: [240, 480, 720])

    def __post_init__(self) -> None:
        if not 1 <= len(self.heights) <= 8 or len(set(self.heights)) != len(self.heights):
            raise msgspec.ValidationError("heights: 1 to 8 different heights - at `$.heights`")
        for height in self.heights:
            if not 16 <= height <= 4320 or height % 2:
                raise msgspec.ValidationError("each height must be an even number from 16 to 4320 - at `$.heights`")


@task("video-renditions", params=RenditionsParams, steps=["Probe", "Renditions", "Playlist"], max_attempts=2,
      description="Transcodes an upload into several heights in parallel (child jobs) and writes their HLS master playlist.")
async def renditions(ctx: JobContext) -> dict[str, object] | WaitForChildren:
    params: RenditionsParams = ctx.params
    if not ctx.children:
        ctx.step("Probe")  # refuse what is not a video before making children of it
        ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
        source = await ctx.fetch_upload(params.upload, "input")
        try:
            width, height = await _dimensions(ctx, ffmpeg, source)
        except Exception as exc:
            raise PermanentError(f"not a readable video: {exc}") from exc
        ctx.log(f"source {width}x{height}; renditions at {', '.join(f'{h}p' for h in params.heights)}")
        ctx.step("Renditions")
        for rendition in sorted(params.heights):
            ctx.spawn("video-transcode", {"upload": params.upload, "height": rendition, "hls": True},
                      name=f"{rendition}p", weight=3)
        return ctx.wait_for_children()
    ctx.step("Playlist")
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    made: dict[str, object] = {}
    for name, child in sorted(ctx.children.items(), key=lambda item: int(item[0].rstrip("p"))):
        result = child.result if isinstance(child.result, dict) else {}
        duration = float(result.get("duration_s") or 1.0)
        bandwidth = int(int(result.get("size", 0)) * 8 / max(duration, 0.1))
        url = f"/api/jobs/{child.id}/artifacts/video.m3u8"
        lines += [f"#EXT-X-STREAM-INF:BANDWIDTH={max(bandwidth, 1)},RESOLUTION={result.get('width')}x{result.get('height')}",
                  url]
        made[name] = {"job": child.id, "width": result.get("width"), "height": result.get("height"),
                      "bandwidth": bandwidth, "playlist": url, "video": f"/api/jobs/{child.id}/artifacts/video.mp4"}
    master = ctx.workdir / "master.m3u8"
    master.write_text("\n".join(lines) + "\n")
    await ctx.artifact("master.m3u8", master, HLS_TYPE)
    ctx.log(f"master playlist: {len(made)} renditions")
    return {"playlist": "master.m3u8", "renditions": made}
