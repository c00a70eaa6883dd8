"""A seconds-long run of the benchmark suite, so it cannot rot (the real run: make bench)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_the_benchmark_runs_end_to_end() -> None:
    result = subprocess.run([sys.executable, "-m", "bench.run", "--smoke"], cwd=ROOT, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "| raw nats-py | burst | 50 |" in result.stdout
    assert "| jobline (HTTP → processor) | burst | 50 |" in result.stdout
    assert "jobline / raw throughput:" in result.stdout


def test_the_stream_benchmarks_run_end_to_end() -> None:
    result = subprocess.run([sys.executable, "-m", "bench.streams", "--smoke"], cwd=ROOT, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert "'clients': 20" in lines[0] and "'deliveries': 60" in lines[0]
    assert "sse_events_per_s" in lines[1] and "startup_s" in lines[2]
