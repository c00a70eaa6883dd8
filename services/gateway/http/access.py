"""HTTP routes that hand out credentials: a browser session, stream tokens, form tokens."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import JSONBody

from jobline.contract.names import is_valid_job_id
from jobline.contract.submissions import MAX_TAGS, OWNER_PATTERN, TAG_PATTERN

from .auth import SESSION_COOKIE, Auth
from .limits import MAX_WATCHED_JOBS
from .problems import Problem
from .roles import Role, can


class SessionRequest(msgspec.Struct, forbid_unknown_fields=True):
    token: str


class FormTokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Optional: whose the jobs the form submits are (stamped on each, whatever the form says)."""

    owner: str | None = None


class StreamTokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Optional: the jobs the token reads, or whose (every job without either)."""

    jobs: list[str] | None = None
    owner: str | None = None
    tags: list[str] = []


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
      errors=(400, 409, 422),
      description="For stream clients that can neither send headers nor keep cookies. Expires in 5 minutes. "
      f"With a body `{{\"jobs\": [\"<id>\", …]}}` (1 to {MAX_WATCHED_JOBS} ids) it reads those jobs only — their "
      "state, events, logs, timeline and artifacts, and /api/events?jobs= of them: any other job is 404, "
      "every other route 403 (what a page showing one user's job should hold). With `{\"owner\": \"<id>\"}` it "
      "reads that owner's jobs, and lists and searches only them. Without a body it reads everything.")
async def create_stream_token(request: Request[Any, Any, Any], auth: NamedDependency[Auth],
                              data: JSONBody[StreamTokenRequest | None] = None) -> dict[str, Any]:
    identity = request.scope.get("state", {}).get("identity")
    if not auth.enabled or identity is None:
        raise Problem(409, "No tokens", "this gateway has no API tokens; streams need no token")
    jobs, owner, tags = (None, None, []) if data is None else (data.jobs, data.owner, data.tags)
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
    return {"token": auth.stream_token(identity, jobs, owner, sorted(set(tags))), "expires_in": int(auth.stream_token_ttl_s),
            "jobs": jobs, "owner": owner, "tags": sorted(set(tags))}


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
