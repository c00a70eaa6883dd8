"""The benchmark's picture: throughput and latency per system, side by side (docs/benchmarks.png)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from .run import Result


def wrap(system: str) -> str:
    return system.replace(" (", "\n(").replace(", ", ",\n").replace(" + 1 ", "\n+ 1 ").replace(" + progress", "\n+ progress")


def plot(results: list[Result], path: Path) -> None:
    burst = [r for r in results if r.mode == "burst"]
    paced = [r for r in results if r.mode != "burst"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5))
    names = [wrap(r.system) for r in burst]
    bars = left.bar(names, [r.jobs_per_s for r in burst], color=["#888", "#2a7", "#7c9", "#c55", "#e99", "#aaa"][:len(burst)])
    left.bar_label(bars, fmt="{:,.0f}")
    left.set_title(f"Burst throughput, noop jobs (N={burst[0].jobs if burst else 0}, median)")
    left.set_ylabel("jobs / s")
    names = [wrap(r.system) for r in paced]
    x = range(len(paced))
    width = 0.38
    p50 = right.bar([i - width / 2 for i in x], [r.p50_ms for r in paced], width, label="p50", color="#2a7")
    p99 = right.bar([i + width / 2 for i in x], [r.p99_ms for r in paced], width, label="p99", color="#555")
    right.bar_label(p50, fmt="{:.1f}")
    right.bar_label(p99, fmt="{:.1f}")
    right.set_xticks(list(x), names)
    right.set_title(f"Submit → completed, {paced[0].mode if paced else ''}")
    right.set_ylabel("ms")
    right.legend()
    for axis in (left, right):
        axis.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
