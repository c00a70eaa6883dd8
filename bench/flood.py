"""The progress flood: one job calling `progress()` 10,000 times a second (see docs/benchmarks.md).

    .venv/bin/python -m bench.flood            # 2 x 30 s
    .venv/bin/python -m bench.flood --smoke    # seconds

A processor process runs the same job twice: once calling progress() in its loop, once running
the loop alone. The processor's CPU time (from /proc) in each run, divided by the run's wall time,
gives the share of a core; the difference is what Jobline's handling of the calls costs. Events
published per second are counted in the stream.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nats
from nats.js import JetStreamContext

from jobline.contract.events import JobCreated, encoder, job_event_decoder
from jobline.contract.names import Names
from jobline.contract.publishing import subject_of
from jobline.contract.streams import RetentionSettings
from jobline.runtime.embedded_nats import start_nats_server
from jobline.runtime.stream_setup import ensure_streams

from . import loop
from .run import spawn, stop

ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def run_job(js: JetStreamContext, names: Names, pid: int, job_id: str, rate: int, seconds: float,
                  report: bool) -> dict[str, float]:
    ends = await js.subscribe(names.run_event(job_id, "ended"), stream=names.jobs_stream, ordered_consumer=True)
    created = JobCreated(ts=time.time(), job_id=job_id, type="bench-flood",
                         params={"rate": rate, "seconds": seconds, "report": report})
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    await js.publish(subject_of(names, created), encoder.encode(created))
    end = job_event_decoder.decode((await ends.next_msg(timeout=seconds + 60)).data)
    cpu, wall = cpu_seconds(pid) - cpu0, time.perf_counter() - t0
    await ends.unsubscribe()
    info = await js.stream_info(names.jobs_stream, subjects_filter=names.job_event(job_id, "progress"))
    progress_events = sum((info.state.subjects or {}).values())
    calls = end.result["calls"]  # type: ignore[attr-defined]
    return {"report": report, "calls": calls, "calls_per_s": round(calls / seconds), "wall_s": round(wall, 2),
            "cpu_share_of_a_core": round(cpu / wall, 4), "progress_events": progress_events,
            "events_per_s": round(progress_events / seconds, 1)}


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_nats_server(Path(tmp) / "nats")
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        names = Names("flood")
        await ensure_streams(js, names, RetentionSettings())
        env = dict(os.environ, NATS_URL=server.url, JOBLINE_NAMESPACE=names.namespace, JOBLINE_DATA_DIR=tmp,
                   JOBLINE_TASK_MODULES="bench.tasks", JOBLINE_PROCESSOR_TYPES="bench-flood",
                   JOBLINE_OPS_PORT="0", PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
        processor = await spawn([sys.executable, "-m", "jobline.processor"], env, b"processing")
        try:
            results = []
            for i, report in enumerate((False, True, False, True)[: 2 if args.smoke else 4]):
                results.append(await run_job(js, names, processor.pid, f"flood{i}", args.rate, args.seconds, report))
                print(results[-1], flush=True)
            quiet = [r["cpu_share_of_a_core"] for r in results if not r["report"]]
            loud = [r["cpu_share_of_a_core"] for r in results if r["report"]]
            cost = min(loud) - min(quiet)
            print(f"progress() flood at {args.rate}/s costs {cost:.1%} of a core; "
                  f"{max(r['events_per_s'] for r in results)} progress events/s published")
        finally:
            await stop(processor)
            await nc.close()
            server.stop()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=10_000, help="progress() calls per second")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each run")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.seconds = 2.0
    loop.run(main(args))


if __name__ == "__main__":
    cli()
