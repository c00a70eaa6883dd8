"""Labelled Prometheus series looked up once per label set.

prometheus_client hashes the label values and takes a lock on every `labels()` call; the gateway
counts every request and the processor every attempt, so each child is kept after its first use.
The label sets are few (route templates, statuses, job types, outcomes).
"""

from __future__ import annotations

from typing import Any


class LabelledSeries:
    def __init__(self, metric: Any):
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child
