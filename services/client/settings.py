"""The client's settings: arguments first, else the same environment variables as the CLI."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class ClientSettings:
    url: str = DEFAULT_URL  # JOBLINE_URL
    token: str | None = None  # JOBLINE_TOKEN: an API token, sent as `Authorization: Bearer`
    timeout_s: float = 30.0  # JOBLINE_CLIENT_TIMEOUT_S: connect/read timeout of one request
    retries: int = 8  # JOBLINE_CLIENT_RETRIES: attempts after the first for a transient failure
    backoff_s: float = 0.2  # first retry delay; doubles, capped at max_backoff_s, with jitter
    max_backoff_s: float = 5.0

    @classmethod
    def resolve(cls, url: str | None = None, token: str | None = None, timeout_s: float | None = None,
                retries: int | None = None) -> ClientSettings:
        return cls(
            url=(url or os.environ.get("JOBLINE_URL") or DEFAULT_URL).rstrip("/"),
            token=token if token is not None else (os.environ.get("JOBLINE_TOKEN") or None),
            timeout_s=timeout_s if timeout_s is not None else float(os.environ.get("JOBLINE_CLIENT_TIMEOUT_S", "30")),
            retries=retries if retries is not None else int(os.environ.get("JOBLINE_CLIENT_RETRIES", "8")),
        )
