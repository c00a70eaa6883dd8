"""A backend script: upload a video, submit a transcode, watch it with a progress bar, download the result.

    python examples/backend.py clip.mp4 [--height 360] [--out out/]     # JOBLINE_URL, JOBLINE_TOKEN as for the CLI

Run by tests/test_examples.py. The three lines that matter:

    job = jobline.submit("video-transcode", {"upload": jobline.upload(path).id, "height": 360})
    for event in job.watch(): ...
    job.artifacts(out)                       # the result files, downloaded
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from jobline.client import Client, JobError
from jobline.client.events import LogLineWritten, ProgressReported, Snapshot, StepStarted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with Client() as jobline, Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn()) as bars:
        sending = bars.add_task("upload", total=args.video.stat().st_size)
        upload = jobline.upload(args.video, progress=lambda sent, _total: bars.update(sending, completed=sent))
        job = jobline.submit("video-transcode", {"upload": upload.id, "height": args.height})
        running = bars.add_task(f"job {job.id}", total=1.0)
        for event in job.watch():
            match event:
                case Snapshot(job=state):
                    bars.update(running, completed=state.progress or 0)
                case StepStarted(name=name):
                    bars.update(running, description=f"job {job.id} · {name}")
                case ProgressReported(fraction=fraction) if fraction is not None:
                    bars.update(running, completed=fraction)
                case LogLineWritten(message=message):
                    bars.console.print(message, markup=False, highlight=False)
        try:
            job.wait()
        except JobError as exc:
            print(f"the job did not complete: {exc}", file=sys.stderr)
            return 1
        for artifact in job.artifacts(args.out):  # downloaded into the folder
            print(f"saved {artifact.name} ({artifact.size} bytes) to {args.out / artifact.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
