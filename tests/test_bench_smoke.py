"""A seconds-long run of the benchmark suite, so it cannot rot (the real run: make bench)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_the_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    plot = tmp_path / "plot.png"
    result = subprocess.run([sys.executable, "-m", "bench.run", "--smoke", "--plot", str(plot)], cwd=ROOT,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "| raw nats-py | burst | 50 |" in result.stdout
    assert "| jobline (HTTP → processor) | burst | 50 |" in result.stdout
    assert "| jobline + progress + 1 SSE watcher per job | burst | 50 |" in result.stdout
    assert "| celery + redis | burst | 50 |" in result.stdout
    assert "| celery + redis, events on (-E) | burst | 50 |" in result.stdout
    assert "jobline / raw throughput:" in result.stdout and "jobline / celery throughput:" in result.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_flood_benchmark_runs_end_to_end() -> None:
    result = subprocess.run([sys.executable, "-m", "bench.flood", "--smoke"], cwd=ROOT, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "'report': True" in result.stdout and "of a core" in result.stdout


def test_the_stream_benchmarks_run_end_to_end() -> None:
    result = subprocess.run([sys.executable, "-m", "bench.streams", "--smoke"], cwd=ROOT, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert "'clients': 20" in lines[0] and "'deliveries': 60" in lines[0]
    assert "sse_events_per_s" in lines[1] and "startup_s" in lines[2]


def test_the_http_ceiling_benchmark_runs_end_to_end() -> None:
    result = subprocess.run([sys.executable, "-m", "bench.http_ceiling", "--requests", "300", "--concurrency", "8"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "bare_litestar_post_per_s" in result.stdout


def test_the_version_comparison_runs_end_to_end() -> None:
    def worktrees() -> str:
        return subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True).stdout

    if not (ROOT / ".git").exists():
        pytest.skip("bench.compare checks out git revisions: this copy is not a git checkout")
    before = worktrees()
    result = subprocess.run([sys.executable, "-m", "bench.compare", "HEAD", "--smoke"], cwd=ROOT, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    for version in ("A", "B"):
        row = next(line for line in lines if line.startswith(f"{{'version': '{version}', 'pair': 0"))
        assert all(f"'{name}': " in row for name in ("gateway", "processor", "logsink", "nats-server", "load generator"))
    assert lines[-1].startswith("{'jobs_per_s_ratio_B_over_A': [")
    assert worktrees() == before  # the revision's checkout is removed again


def test_the_client_benchmark_runs_end_to_end() -> None:
    result = subprocess.run([sys.executable, "-m", "bench.clients", "--smoke"], cwd=ROOT, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "| raw httpx + httpx-sse |" in result.stdout and "| jobline.client (submit + wait) |" in result.stdout


def test_the_queue_controls_benchmark_runs_end_to_end() -> None:
    result = subprocess.run([sys.executable, "-m", "bench.queue_controls", "--smoke"], cwd=ROOT, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "jobs/s" not in line]
    assert len(rows) == 6 and all(float(row.split("|")[2].replace(",", "")) > 0 for row in rows), result.stdout


def test_the_batch_benchmark_runs_end_to_end() -> None:
    result = subprocess.run([sys.executable, "-m", "bench.batches", "--smoke"], cwd=ROOT, capture_output=True,
                            text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "| jobline, POST /api/batches of 1,000 |" in result.stdout and "| raw nats-py |" in result.stdout


def test_the_nats_client_benchmark_runs() -> None:
    result = subprocess.run([sys.executable, "-m", "bench.nats_client", "--smoke"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "µs" not in line]
    assert len(rows) == 6 and all(float(row.split("|")[2]) > 0 for row in rows), result.stdout
