"""What a token scoped to some jobs, to one owner's jobs or to tagged jobs may read: those, and
nothing else.

A page that shows a user's jobs gets a stream token minted by its app's backend for them only:
`POST /api/stream-tokens {"jobs": [...]}` (those jobs), `{"owner": "<id>"}` (every job of that
owner, those to come included) or `{"tags": [...]}` (every job carrying all those tags; with an
owner, that owner's such jobs). With it, a GET of such a job (its state, events, logs, timeline,
artifacts) and the multiplexed stream of such jobs (`/api/events?jobs=…`, no firehose) pass, and,
for an owner or tags, the list, search, counts and activity of jobs (narrowed to its own); a job outside the
scope is `404`, as if it did not exist (an id guessed or copied from another user's page tells nothing);
every other route — batches, flows, schedules, queues, the services' logs, the firehose (and the
lists, for a token of some ids) — is `403`. The middleware (auth.py) judges what the path
and query tell; a job's owner is known only once it is found, so the routes that find one call
`check_visible`; the WebSocket applies the same rules to each subscription (live/websocket.py).

A token may also carry rights beyond reading, for the same jobs: `submit` (an owner's token:
`POST /api/jobs`, JSON or a form, each job stamped with that owner — another owner in the body is
`403` — and of the token's `types` only, if it names them), `cancel` (`POST /api/jobs/<id>/cancel`)
and `signal` (`POST /api/jobs/<id>/signals/<name>`) of a job in its scope (another is `404`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from jobline.contract.job_state import JobState
from jobline.contract.submissions import JobSubmission
from jobline.jobs.errors import NotFound

from .problems import Problem

FALSE_WORDS = frozenset({"0", "false", "f", "no", "n", "off"})  # what Litestar reads as a false bool
Refusal = tuple[int, str, str]  # status, title, detail

_JOB_PATH = re.compile(r"/api/jobs/(?P<id>[^/]+)(?:/(?:events|logs|timeline|state|artifacts/[^/]+))?")
_JOB_WRITE = re.compile(r"/api/jobs/(?P<id>[^/]+)/(?P<what>cancel|signals/[^/]+)")
_SUBMIT_PATHS = ("/api/jobs", "/api/jobs/form")
_READABLE_BY_ANYONE = ("/api/types",)  # the catalogue of job types holds no one's data
_LISTS = ("/api/jobs", "/api/stats/counts", "/api/stats/activity")  # narrowed to an owner's or tags' jobs
OUTSIDE = "Forbidden", "this token reads only the jobs it was made for"
READ, SUBMIT, CANCEL, SIGNAL = "read", "submit", "cancel", "signal"
RIGHTS = (READ, SUBMIT, CANCEL, SIGNAL)


@dataclass(frozen=True)
class TokenScope:
    """The jobs a token reads: these ids; or this owner's and/or those with all these tags."""

    jobs: frozenset[str] | None = None
    owner: str | None = None
    tags: frozenset[str] = frozenset()
    rights: frozenset[str] = frozenset({READ})
    types: frozenset[str] | None = None  # with `submit`: the only types it may submit

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
    if path in _READABLE_BY_ANYONE or (path in _LISTS and scope.lists):
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


def write_refusal(method: str, path: str, scope: TokenScope) -> Refusal | None:
    """Why a write with a scoped token must not pass, as far as the path tells (None: its rights
    cover it; the route then checks the job's scope, or stamps the submission)."""
    if method == "POST" and path in _SUBMIT_PATHS:
        return None if SUBMIT in scope.rights and scope.owner is not None else \
            (403, "Forbidden", "this token does not submit jobs (a token of an owner made with the right `submit` does)")
    match = _JOB_WRITE.fullmatch(path)
    if method == "POST" and match:
        right = CANCEL if match["what"] == CANCEL else SIGNAL
        if right not in scope.rights:
            return 403, "Forbidden", f"this token may not {right} jobs (made without the right `{right}`)"
        return not_found(match["id"]) if scope.jobs is not None and match["id"] not in scope.jobs else None
    return 403, "Forbidden", "this token only reads (and submits, cancels or signals its jobs if made to)"


def stamp(connection_scope: Any, submission: JobSubmission, *, override: bool = False) -> JobSubmission:
    """The submission as a scoped token may send it: its owner's (another owner in it is refused;
    `override`: replaced, as a form token's page cannot be asked to say it), of its types only."""
    scope = scope_of(connection_scope)
    if scope is None:
        return submission
    if scope.types is not None and submission.type not in scope.types:
        raise Problem(403, "Forbidden", f"this token submits only jobs of type {', '.join(sorted(scope.types))}",
                      errors=[{"key": "type", "source": "body", "message": "not a type this token submits"}])
    if scope.owner is not None:
        if not override and submission.owner not in (None, scope.owner):
            raise Problem(403, "Forbidden", f"this token submits jobs of owner {scope.owner} only",
                          errors=[{"key": "owner", "source": "body", "message": "not this token's owner"}])
        submission.owner = scope.owner
    return submission


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
