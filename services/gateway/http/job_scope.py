"""What a token scoped to some jobs may read: those jobs, and nothing else.

A page that shows a user's job (`<jobline-progress>`) gets a stream token minted by its app's
backend for that job only (`POST /api/stream-tokens {"jobs": [...]}`). With it, a GET of one of
those jobs (its state, events, logs, timeline, artifacts) and the multiplexed stream of them
(`/api/events?jobs=…`, no firehose) pass; a job outside the scope is `404`, as if it did not exist
(an id guessed or copied from another user's page tells nothing); every other route — lists,
searches, counts, batches, flows, schedules, queues, the services' logs, the firehose — is `403`.
The WebSocket applies the same rule to each subscription (live/websocket.py).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs

FALSE_WORDS = frozenset({"0", "false", "f", "no", "n", "off"})  # what Litestar reads as a false bool
Refusal = tuple[int, str, str]  # status, title, detail

_JOB_PATH = re.compile(r"/api/jobs/(?P<id>[^/]+)(?:/(?:events|logs|timeline|state|artifacts/[^/]+))?")
_READABLE_BY_ANYONE = ("/api/types",)  # the catalogue of job types holds no one's data

OUTSIDE = "Forbidden", "this token reads only the jobs it was made for"


def not_found(job_id: str) -> Refusal:
    return 404, "Not found", f"no job {job_id}"


def refusal(path: str, query_string: bytes, jobs: frozenset[str]) -> Refusal | None:
    """Why a GET of `path` with a token scoped to `jobs` must not pass, if it must not."""
    if path in _READABLE_BY_ANYONE:
        return None
    match = _JOB_PATH.fullmatch(path)
    if match:
        return None if match["id"] in jobs else not_found(match["id"])
    if path == "/api/events":
        query = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
        watched = [j.strip() for value in query.get("jobs", []) for j in value.split(",") if j.strip()]
        firehose = query.get("firehose")
        if not watched or (firehose and any(v.strip().lower() not in FALSE_WORDS for v in firehose)):
            return 403, OUTSIDE[0], "this token follows only its own jobs: /api/events?jobs=<its jobs> (no firehose)"
        outside = [j for j in watched if j not in jobs]
        return not_found(outside[0]) if outside else None
    return 403, *OUTSIDE


def allows_subscription(jobs: frozenset[str] | None, watched: list[str], firehose: bool) -> bool:
    """Whether a WebSocket subscription stays within a token's scope (None: not scoped)."""
    return jobs is None or (not firehose and bool(watched) and all(j in jobs for j in watched))
