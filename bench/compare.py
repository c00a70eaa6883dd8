"""Two versions of Jobline side by side: is a change faster, and where does the CPU go?

Burst rounds of the same noop jobs through the gateway (as in `bench.run`), alternating between
the two versions (A B, B A, …) on one nats-server, each version's services started from its own
source tree. For every round: jobs/s and the CPU each process spent per job (gateway, processor,
logsink, history and conductor — those a version has — from /proc, nats-server, and this process
as the load generator). On a noisy machine absolute figures drift by ±15 % between rounds; the
ratio of jobs/s within each pair is what to read (docs/benchmarks.md). A service's CPU includes its
start-up (about 0.7 s each, ~70 µs per job at 10,000 jobs).

    .venv/bin/python -m bench.compare HEAD~3               # that revision (A) against the working tree (B)
    .venv/bin/python -m bench.compare v1 --other v2 --jobs 10000 --pairs 6
    .venv/bin/python -m bench.compare HEAD --smoke         # what the tests run
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import nats

from jobline.runtime.embedded_nats import start_nats_server

from . import loop
from .flood import cpu_seconds
from .run import bench_jobline

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("gateway", "processor", "logsink", "history", "conductor")


class ChildCpu(threading.Thread):
    """The last CPU time seen of each `python -m jobline.<service>` child, sampled every 50 ms
    (a child's last < 50 ms are lost: ~1 % of a round of several seconds)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seen: dict[int, tuple[str, float]] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            for pid in children():
                try:
                    name = self.seen[pid][0] if pid in self.seen else service_of(pid)
                    if name:
                        self.seen[pid] = (name, cpu_seconds(pid))
                except (OSError, IndexError):
                    pass  # it just ended

    def take(self) -> dict[str, float]:
        per: dict[str, float] = {}
        for name, seconds in self.seen.values():
            per[name] = per.get(name, 0.0) + seconds
        self.seen.clear()
        return per


def children() -> list[int]:
    pids = []
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            pids += [int(p) for p in (task / "children").read_text().split()]
    return pids


def service_of(pid: int) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    module = argv[argv.index(b"-m") + 1].decode() if b"-m" in argv else ""
    name = module.removeprefix("jobline.")
    return name if name in SERVICES else ""


@contextlib.contextmanager
def source_tree(revision: str | None, into: Path) -> Iterator[Path]:
    """A folder whose `jobline` package is `services/` at `revision` (None: the working tree)."""
    folder = into / (revision or "working-tree").replace("/", "_")
    folder.mkdir()
    if revision is None:
        (folder / "jobline").symlink_to(ROOT / "services")
        yield folder
        return
    tree = into / f"tree-{folder.name}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--quiet", "--detach", str(tree), revision], check=True)
    try:
        (folder / "jobline").symlink_to(tree / "services")
        yield folder
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


async def compare(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as trees:
        sources = {"A": trees.enter_context(source_tree(args.base, Path(tmp))),
                   "B": trees.enter_context(source_tree(args.other, Path(tmp)))}
        server = start_nats_server(Path(tmp) / "nats")
        nc = await nats.connect(server.url)
        sampler = ChildCpu()
        sampler.start()
        rounds: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
        try:
            for pair in range(args.pairs):
                for version in ("A", "B") if pair % 2 == 0 else ("B", "A"):
                    nats_before, me_before = cpu_seconds(server.process.pid), time.thread_time()
                    sampler.take()
                    result = await bench_jobline(nc, server.url, args.jobs, args.concurrency, None, Path(tmp),
                                                 f"{version.lower()}{pair}", watched=args.watched,
                                                 source=sources[version], job_type=args.type)
                    cpu = sampler.take()
                    cpu["nats-server"] = cpu_seconds(server.process.pid) - nats_before
                    cpu["load generator"] = time.thread_time() - me_before
                    row = {name: round(seconds / args.jobs * 1e6) for name, seconds in cpu.items()}
                    row["total"] = sum(row.values())
                    row["jobs/s"] = round(result.jobs_per_s)
                    rounds[version].append(row)
                    print({"version": version, "pair": pair, "us_cpu_per_job": row}, flush=True)
        finally:
            sampler.done.set()
            await nc.close()
            server.stop()
    for version, revision in (("A", args.base), ("B", args.other or "working tree")):
        keys = rounds[version][0].keys()
        print({"version": version, "revision": revision,
               "median": {k: statistics.median(r.get(k, 0) for r in rounds[version]) for k in keys}})
    ratios = [round(b["jobs/s"] / a["jobs/s"], 3) for a, b in zip(rounds["A"], rounds["B"], strict=True)]
    print({"jobs_per_s_ratio_B_over_A": ratios, "median": statistics.median(ratios)})


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="git revision of version A")
    parser.add_argument("--other", help="git revision of version B (default: the working tree)")
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs per round")
    parser.add_argument("--pairs", type=int, default=4, help="rounds of each version")
    parser.add_argument("--concurrency", type=int, default=64, help="submissions in flight")
    parser.add_argument("--watched", action="store_true",
                        help="the realistic job: progress events and one SSE watcher per job (bench.run's second system)")
    parser.add_argument("--type", help="jobs of this type of bench/tasks.py instead of noop (e.g. bench-realistic: "
                        "20 progress events and 20 log lines; run with JOBLINE_PROGRESS_RATE=0 to keep every one)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run that only proves the tool works")
    args = parser.parse_args()
    if args.smoke:
        args.jobs, args.pairs = 50, 1
    loop.run(compare(args))


if __name__ == "__main__":
    cli()
