"""The benchmark processes' event loop: uvloop when installed, as in the services
(`runtime/lifecycle.py`). The load generator and the raw ceiling share the 2 cores with what
they measure, so they run on the same loop the services do."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on Windows)
        return asyncio.run(main)
    return uvloop.run(main)
