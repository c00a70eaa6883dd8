"""The field index: which values a job's params and result hold, by path, for searches.

A job's params (when it is created) and result (when it completes) are flattened into
`(path, value)` rows: `params.height` → `720`, `params.output.codec` → `"h264"`. A value is its
JSON text in one canonical form (msgspec's encoding, an integral float written as an integer), so
a search compares texts: `params.height=720` finds `720` and `720.0`. Objects are followed three
levels below the root; what lies deeper, a list, or an object at that depth is indexed as its
whole JSON text when that is short. A job whose fields do not all fit (more than `MAX_FIELDS` per
root, a value longer than `MAX_VALUE`, a key that is not a plain name) is marked partial, and a
search scans those jobs' JSON as well, so nothing is missed.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from jobline.contract.history import FIELD_SEGMENT_PATTERN

INDEXED_DEPTH = 3  # names below the root: params.a.b.c
MAX_FIELDS = 64  # per root (params, result)
MAX_VALUE = 1024  # characters of a value's JSON text

_SEGMENT = re.compile(FIELD_SEGMENT_PATTERN)
_encoder = msgspec.json.Encoder()


def canonical(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        value = int(value)
    return _encoder.encode(value).decode()


def indexable(path: list[str], value: Any) -> bool:
    """Whether a search for `value` at `path` can be answered from the index (else it scans the
    jobs' JSON): objects are indexed whole only at the deepest indexed level."""
    depth = len(path) - 1
    return depth <= INDEXED_DEPTH and (not isinstance(value, dict) or depth == INDEXED_DEPTH)


def leaves(root: str, value: Any) -> tuple[list[tuple[str, str]], bool]:
    """(path, canonical value) rows for one root, and whether some did not fit (partial)."""
    rows: list[tuple[str, str]] = []
    partial = False

    def walk(prefix: str, node: Any, depth: int) -> None:
        nonlocal partial
        if isinstance(node, dict) and depth < INDEXED_DEPTH:
            for key, child in node.items():
                if not isinstance(key, str) or not _SEGMENT.fullmatch(key):
                    partial = True
                    continue
                walk(f"{prefix}.{key}", child, depth + 1)
            return
        if depth == 0:
            return  # the root itself (params are an object; a non-object result has no fields)
        text = canonical(node)
        if len(text) > MAX_VALUE or len(rows) >= MAX_FIELDS:
            partial = True
            return
        rows.append((prefix, text))

    walk(root, value, 0)
    return rows, partial
