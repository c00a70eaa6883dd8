"""What a token scoped to some jobs, to one owner's jobs or to tagged jobs may read: those, and
nothing else.

A page that shows a user's jobs gets a stream token minted by its app's backend for them only:
`POST /api/stream-tokens {"jobs": [...]}` (those jobs), `{"owner": "<id>"}` (every job of that
owner, those to come included) or `{"tags": [...]}` (every job carrying all those tags; with an
owner, that owner's such jobs). With it, a GET of such a job (its state, events, logs, timeline,
artifacts) and the multiplexed stream of such jobs (`/api/events?jobs=…`, no firehose) pass, and,
for an owner, the list and search of jobs (narrowed to the owner's); a job outside the scope is
`404`, as if it did not exist (an id guessed or copied from another user's page tells nothing);
every other route — batches, flows, schedules, queues, counts, the services' logs, the firehose —
is `403`. The middleware (auth.py) judges what the path and query tell; a job's owner is known
only once it is found, so the routes that find one call `check_visible`; the WebSocket applies
the same rules to each subscription (live/websocket.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from jobline.contract.job_state import JobState
from jobline.jobs.errors import NotFound

FALSE_WORDS = frozenset({"0", "false", "f", "no", "n", "off"})  # what Litestar reads as a false bool
Refusal = tuple[int, str, str]  # status, title, detail

_JOB_PATH = re.compile(r"/api/jobs/(?P<id>[^/]+)(?:/(?:events|logs|timeline|state|artifacts/[^/]+))?")
_READABLE_BY_ANYONE = ("/api/types",)  # the catalogue of job types holds no one's data
OUTSIDE = "Forbidden", "this token reads only the jobs it was made for"


@dataclass(frozen=True)
class TokenScope:
    """The jobs a token reads: these ids; or this owner's and/or those with all these tags."""

    jobs: frozenset[str] | None = None
    owner: str | None = None
    tags: frozenset[str] = frozenset()

    @property
    def lists(self) -> bool:
        """Whether it may list jobs (narrowed to its owner and tags): not a token for some ids."""
        return self.jobs is None

    def allows(self, job: JobState) -> bool:
        if self.jobs is not None:
            return job.id in self.jobs
        return (self.owner is None or job.owner == self.owner) and self.tags <= set(job.tags)


def not_found(job_id: str) -> Refusal:
    return 404, "Not found", f"no job {job_id}"


def refusal(path: str, query_string: bytes, scope: TokenScope) -> Refusal | None:
    """Why a GET of `path` with a scoped token must not pass, as far as the path and query tell."""
    if path in _READABLE_BY_ANYONE or (path == "/api/jobs" and scope.lists):
        return None
    match = _JOB_PATH.fullmatch(path)
    if match:
        return not_found(match["id"]) if scope.jobs is not None and match["id"] not in scope.jobs else None
    if path == "/api/events":
        query = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
        watched = [j.strip() for value in query.get("jobs", []) for j in value.split(",") if j.strip()]
        firehose = query.get("firehose")
        if not watched or (firehose and any(v.strip().lower() not in FALSE_WORDS for v in firehose)):
            return 403, OUTSIDE[0], "this token follows only its own jobs: /api/events?jobs=<its jobs> (no firehose)"
        outside = [j for j in watched if scope.jobs is not None and j not in scope.jobs]
        return not_found(outside[0]) if outside else None
    return 403, *OUTSIDE


def scope_of(connection_scope: Any) -> TokenScope | None:
    """The scope of the request's token (None: not a scoped token)."""
    scope: TokenScope | None = connection_scope.get("state", {}).get("token_scope")
    return scope


def check_visible(connection_scope: Any, job: JobState) -> JobState:
    """The job, if the request's token may read it; NotFound (as for no such job) otherwise."""
    scope = scope_of(connection_scope)
    if scope is not None and not scope.allows(job):
        raise NotFound(f"there is no job {job.id!r}", title="Job not found")
    return job


def subscription_refusal(scope: TokenScope | None, watched: list[str], firehose: bool) -> str | None:
    """Why a WebSocket subscription leaves a token's scope as far as its ids tell (None: it may not)."""
    if scope is None:
        return None
    if firehose or not watched:
        return "this token follows only the jobs it was made for (no firehose)"
    if scope.jobs is not None and not all(j in scope.jobs for j in watched):
        return "no such job"
    return None
