"""Run-time histograms: log-spaced bins, so percentiles over any window come from per-minute rows.

Bin `i` holds run times in [FLOOR·GROWTH^i, FLOOR·GROWTH^(i+1)); a percentile is reported as the
upper edge of the bin it falls in (capped at the largest run time seen), so it is at most 10 % above
the exact value. Run time = the job's end minus the start of its last attempt.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

FLOOR_S = 0.001
GROWTH = 1.1
MAX_BIN = 300  # 1 ms · 1.1^300 ≈ 2.6e9 s: beyond any job


# (minute, type, status) → jobs that ended then, their run-time histogram, the longest run
EndedByMinute = dict[tuple[int, str, str], tuple[int, Counter[int], float | None]]


def count_end(ended: EndedByMinute, job_type: str, status: str, started_at: float | None, finished_at: float) -> None:
    """One job's end, into its minute's count and run-time histogram."""
    key = (int(finished_at // 60) * 60, job_type, status)
    n, bins, longest = ended.get(key, (0, Counter(), None))
    if started_at is not None:
        run_s = max(finished_at - started_at, 0.0)
        bins[bin_of(run_s)] += 1
        longest = run_s if longest is None else max(longest, run_s)
    ended[key] = (n + 1, bins, longest)


def bin_of(run_s: float) -> int:
    if run_s <= FLOOR_S:
        return 0
    return min(int(math.log(run_s / FLOOR_S) / math.log(GROWTH)), MAX_BIN)


def upper_edge(index: int) -> float:
    return FLOOR_S * GROWTH ** (index + 1)


def merge(histograms: Iterable[dict[str, int]]) -> Counter[int]:
    total: Counter[int] = Counter()
    for histogram in histograms:
        for key, count in histogram.items():
            total[int(key)] += count
    return total


def percentiles(histogram: Counter[int], max_s: float | None, quantiles: tuple[float, ...]) -> list[float | None]:
    count = sum(histogram.values())
    if not count:
        return [None for _ in quantiles]
    ordered = sorted(histogram.items())
    out: list[float | None] = []
    for q in quantiles:
        rank = max(math.ceil(q * count), 1)
        seen = 0
        for index, n in ordered:
            seen += n
            if seen >= rank:
                value = upper_edge(index)
                out.append(min(value, max_s) if max_s is not None else value)
                break
    return out
