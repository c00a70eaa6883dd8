"""HTTP routes that hand out credentials: a browser session, stream tokens, form tokens."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import JSONBody

from jobline.contract.names import is_valid_job_id, is_valid_job_type
from jobline.contract.submissions import MAX_TAGS, OWNER_PATTERN, TAG_PATTERN

from .auth import SESSION_COOKIE, Auth
from .job_scope import CANCEL, READ, RIGHTS, SIGNAL, SUBMIT
from .limits import MAX_TOKEN_TTL_S, MAX_WATCHED_JOBS
from .problems import Problem
from .roles import Role, allows, can

# What each right lets a token do, as a route its maker's role must be allowed (roles.py).
RIGHT_PATHS = {SUBMIT: "/api/jobs", CANCEL: "/api/jobs/x/cancel", SIGNAL: "/api/jobs/x/signals/x"}


class SessionRequest(msgspec.Struct, forbid_unknown_fields=True):
    token: str


class FormTokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Optional: whose the jobs the form submits are (stamped on each, whatever the form says)."""

    owner: str | None = None


class StreamTokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Optional: the jobs the token reads, or whose (every job without either); what else it may do
    with them (`rights`: submit, cancel, signal), the types it may submit, how long it lasts."""

    jobs: list[str] | None = None
    owner: str | None = None
    tags: list[str] = []
    rights: list[str] = []
    types: list[str] | None = None
    expires_in: int | None = None  # seconds, 1 to MAX_TOKEN_TTL_S (default: 300)


@post("/api/session", status_code=204, summary="Log the browser in: an API token becomes a session cookie",
      errors=(401,),
      description="With JOBLINE_API_TOKENS set, the web UI sends the token once; the gateway answers with an "
      "HttpOnly, SameSite=Strict cookie that fetch and EventSource then carry. 401 for a wrong token.")
async def create_session(auth: NamedDependency[Auth], data: JSONBody[SessionRequest]) -> Response[None]:
    if not auth.enabled:
        return Response(None, status_code=204)
    token_id = auth.token_id(data.token)
    if token_id is None:
        raise Problem(401, "Unauthorized", "that is not a valid API token")
    return Response(None, status_code=204, cookies=[Cookie(
        key=SESSION_COOKIE, value=auth.session_cookie(token_id), httponly=True, samesite="strict", path="/",
        max_age=int(auth.session_ttl_s))])


@get("/api/session", summary="Who is signed in: the role of the token and what it may do", errors=(401,),
     description="`{\"auth\": bool, \"role\": \"admin\" | \"operator\" | \"backend\" | \"viewer\", \"can\": "
     "[\"read\", \"submit\", \"operate\"]}` — the dashboard hides what the role may not do. Without API "
     "tokens everyone is an admin. 401 without credentials (or with a stream or form token).")
async def session_info(request: Request[Any, Any, Any], auth: NamedDependency[Auth]) -> dict[str, Any]:
    if not auth.enabled:
        return {"auth": False, "role": Role.ADMIN, "can": can(Role.ADMIN)}
    identity, how, _ = auth.identify(request.scope)
    if identity is None or how not in ("bearer", "cookie"):
        raise Problem(401, "Unauthorized", "not signed in: POST /api/session with an API token")
    role = auth.role_of(identity)
    return {"auth": True, "role": role, "can": can(role)}


@post("/api/stream-tokens", status_code=201, summary="A short-lived, read-only token for ?access_token=",
      errors=(400, 403, 409, 422),
      description="For stream clients that can neither send headers nor keep cookies. Expires in 5 minutes. "
      f"With a body `{{\"jobs\": [\"<id>\", …]}}` (1 to {MAX_WATCHED_JOBS} ids) it reads those jobs only — their "
      "state, events, logs, timeline and artifacts, and /api/events?jobs= of them: any other job is 404, "
      "every other route 403 (what a page showing one user's job should hold). With `{\"owner\": \"<id>\"}` it "
      "reads that owner's jobs, and lists and searches only them. Without a body it reads everything. "
      "`rights` adds what else it may do with its jobs: `submit` (an owner's token: POST /api/jobs, each job "
      "stamped with the owner; `types` limits the types), `cancel`, `signal` — only rights its maker's role "
      "has (403 otherwise). `expires_in`: seconds, 1 to 86400 (default 300).")
async def create_stream_token(request: Request[Any, Any, Any], auth: NamedDependency[Auth],
                              data: JSONBody[StreamTokenRequest | None] = None) -> dict[str, Any]:
    identity = request.scope.get("state", {}).get("identity")
    if not auth.enabled or identity is None:
        raise Problem(409, "No tokens", "this gateway has no API tokens; streams need no token")
    data = data or StreamTokenRequest()
    jobs, owner, tags = data.jobs, data.owner, data.tags
    if jobs is not None and (owner is not None or tags):
        raise Problem(422, "Invalid scope", "give jobs, or an owner and/or tags, not both",
                      errors=[{"key": "owner", "source": "body", "message": "not with jobs"}])
    if len(tags) > MAX_TAGS or not all(TAG_PATTERN.fullmatch(t) for t in tags):
        raise Problem(422, "Invalid scope", f"tags: at most {MAX_TAGS} tags (letters, digits, _ and -)",
                      errors=[{"key": "tags", "source": "body", "message": "not tags"}])
    if owner is not None and not OWNER_PATTERN.fullmatch(owner):
        raise Problem(422, "Invalid scope", "owner is an owner id (as given at submit)",
                      errors=[{"key": "owner", "source": "body", "message": "not an owner id"}])
    if jobs is not None:
        if not 1 <= len(jobs) <= MAX_WATCHED_JOBS or not all(is_valid_job_id(j) for j in jobs):
            raise Problem(422, "Invalid scope", f"jobs: 1 to {MAX_WATCHED_JOBS} job ids",
                          errors=[{"key": "jobs", "source": "body", "message": f"1 to {MAX_WATCHED_JOBS} job ids"}])
        jobs = sorted(set(jobs))
    rights = sorted(set(data.rights) - {READ})
    types = sorted(set(data.types)) if data.types is not None else None
    _check_rights(rights, types, scoped=jobs is not None or owner is not None or bool(tags), owner=owner)
    role = auth.role_of(identity)
    withheld = [r for r in rights if not allows(role, "POST", RIGHT_PATHS[r])]
    if withheld:  # (a token grants only what its maker may do itself)
        raise Problem(403, "Forbidden", f"a token of role {role} may not grant {', '.join(withheld)}")
    if data.expires_in is not None and not 1 <= data.expires_in <= MAX_TOKEN_TTL_S:
        raise Problem(422, "Invalid expiry", f"expires_in: 1 to {MAX_TOKEN_TTL_S} seconds",
                      errors=[{"key": "expires_in", "source": "body", "message": f"1 to {MAX_TOKEN_TTL_S}"}])
    ttl = float(data.expires_in) if data.expires_in is not None else auth.stream_token_ttl_s
    token = auth.stream_token(identity, jobs, owner, sorted(set(tags)), rights, types, ttl)
    return {"token": token, "expires_in": int(ttl), "jobs": jobs, "owner": owner, "tags": sorted(set(tags)),
            "rights": [READ, *rights], "types": types}


def _check_rights(rights: list[str], types: list[str] | None, *, scoped: bool, owner: str | None) -> None:
    unknown = [r for r in rights if r not in RIGHTS]
    if unknown:
        raise Problem(422, "Invalid rights", f"rights: any of {', '.join(RIGHTS)} (not {', '.join(unknown)})",
                      errors=[{"key": "rights", "source": "body", "message": "unknown right"}])
    if rights and not scoped:
        raise Problem(422, "Invalid rights", "a token that may write is one of some jobs, an owner or tags",
                      errors=[{"key": "rights", "source": "body", "message": "needs jobs, an owner or tags"}])
    if SUBMIT in rights and owner is None:
        raise Problem(422, "Invalid rights", "a token that submits is an owner's: its jobs are stamped with it",
                      errors=[{"key": "owner", "source": "body", "message": "needed with submit"}])
    if types is not None and (SUBMIT not in rights or not types or not all(is_valid_job_type(t) for t in types)):
        raise Problem(422, "Invalid rights", "types: the job types a token that submits may submit (1 or more)",
                      errors=[{"key": "types", "source": "body", "message": "job types, with submit"}])


@post("/api/form-tokens", status_code=201, errors=(400, 409, 422),
      summary="A token that lets a page's plain HTML form submit one kind of request",
      description="For `<form action=\".../api/jobs?access_token=...\">` on a page that has no script or must not "
      "hold the API token: good only for POST /api/jobs (a form), for JOBLINE_FORM_TOKEN_TTL_S (an hour). With "
      "`{\"owner\": \"<id>\"}` every job it submits is that owner's (what the form says is ignored). "
      "409 when the gateway has no API tokens (forms need none).")
async def create_form_token(request: Request[Any, Any, Any], auth: NamedDependency[Auth],
                            data: JSONBody[FormTokenRequest | None] = None) -> dict[str, Any]:
    identity = request.scope.get("state", {}).get("identity")
    if not auth.enabled or identity is None:
        raise Problem(409, "No tokens", "this gateway has no API tokens; forms need no token")
    owner = None if data is None else data.owner
    if owner is not None and not OWNER_PATTERN.fullmatch(owner):
        raise Problem(422, "Invalid owner", "owner is an owner id (as given at submit)",
                      errors=[{"key": "owner", "source": "body", "message": "not an owner id"}])
    return {"token": auth.form_token(identity, owner), "expires_in": int(auth.form_token_ttl_s), "owner": owner}


access_handlers = [session_info, create_session, create_stream_token, create_form_token]
