"""Every route of the OpenAPI document with every kind of credential, against jobs of two owners:
none, a wrong one, each role's API token, a stream token (for everything, for one job, for one
owner), an expired and a tampered one, a form token. Each cell must be what docs/api.md
("Authentication and limits", "Roles") says: refused (401/403), or a job outside a token's scope
not found (404), or let through to the route (whatever it then answers)."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import httpx
import pytest

from jobline.gateway.http.auth import Auth
from jobline.gateway.http.roles import Role, allows

from .helpers import Stack, read_sse

ADMIN = "matrix-admin-secret"
ROLE_TOKENS = {Role.VIEWER: "matrix-viewer-secret", Role.OPERATOR: "matrix-operator-secret",
               Role.BACKEND: "matrix-backend-secret"}
TOKENS = (ADMIN, *(f"{role}:{secret}" for role, secret in ROLE_TOKENS.items()))
STACK: dict[str, Any] = dict(gateway={"api_tokens": TOKENS})
SKIPPED = {"/api/session"}  # (signs in with a token in its body, and says who: tests/test_auth.py)
JOB_PATH = re.compile(r"/api/jobs/\{job_id\}(/.*)?")
JOB_WRITE = re.compile(r"/api/jobs/\{job_id\}/(cancel|signals/\{signal\})")


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def status_of(client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str]) -> int:
    """The answer's status only (a live stream is left at once)."""
    if url.startswith("/api/jobs/form"):  # (a job form: multipart, as a browser sends it)
        async with client.stream(method, url, headers=headers, files={"type": (None, "noop")}) as response:
            return response.status_code
    body = {} if method in ("POST", "PUT") else None
    async with client.stream(method, url, headers=headers, json=body) as response:
        return response.status_code


def concrete(path: str, job_id: str) -> str:
    values = {"job_id": job_id, "batch_id": "x1", "flow_id": "x1", "upload_id": "x1", "name": "nightly",
              "job_type": "noop", "worker_id": "nobody-1", "signal": "go", "operation_id": "op-x1"}
    filled = re.sub(r"\{(\w+)\}", lambda m: values[m[1]], path)
    return filled + ("?at=1" if path.endswith("/state") else "")


def expected(credential: str, method: str, path: str, url: str, own_job: str) -> str:
    """`pass` (not 401/403), `401`, `403` or `404` for this cell."""
    if credential in ("none", "wrong", "expired", "tampered"):
        return "401"
    if credential == "admin":
        return "pass"
    if credential in ROLE_TOKENS:
        return "pass" if allows(Role(credential), method, path) else "403"
    if credential == "form":
        return "pass" if path == "/api/jobs/form" else "403"  # (good only for a job form)
    if credential == "stream-writer" and method == "POST":  # (alice's, with submit, cancel and signal)
        if path in ("/api/jobs", "/api/jobs/form"):
            return "pass"
        if JOB_WRITE.fullmatch(path):
            return "pass" if own_job in url else "404"
    if method != "GET":
        return "403"  # stream tokens only read
    if credential == "stream":
        return "pass"
    # Scoped to Alice's job, to Alice, or to her tag: Bob's job is not found, other routes are forbidden.
    if JOB_PATH.fullmatch(path) or path == "/api/events":  # (the events of its jobs: ?jobs=)
        return "pass" if own_job in url else "404"
    if path == "/api/types" or (path in ("/api/jobs", "/api/stats/counts", "/api/stats/activity")
                                and credential in ("stream-owner", "stream-tag", "stream-writer")):
        return "pass"
    return "403"


def forged(auth: Auth, token: str) -> str:
    """The token with its scope widened to every job: the signature no longer matches."""
    payload, _, signature = token.partition(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.pop("o", None)
    return base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=") + "." + signature


@pytest.mark.slow
async def test_every_route_answers_each_credential_as_documented(client: httpx.AsyncClient, stack: Stack) -> None:
    alices = (await client.post("/api/jobs", json={"type": "noop", "owner": "alice", "tags": ["launch"]},
                                headers=bearer(ADMIN))).json()["id"]
    bobs = (await client.post("/api/jobs", json={"type": "noop", "owner": "bob"}, headers=bearer(ADMIN))).json()["id"]
    for job_id in (alices, bobs):
        await read_sse(client, f"/api/jobs/{job_id}/events", headers=bearer(ADMIN))

    async def minted(path: str, body: dict[str, Any] | None = None) -> str:
        answer = await client.post(path, json=body, headers=bearer(ADMIN))
        assert answer.status_code == 201, answer.text
        return str(answer.json()["token"])

    signer = Auth(tokens=TOKENS)  # (the gateway's own signing, to make a token that has expired)
    owner_token = await minted("/api/stream-tokens", {"owner": "alice"})
    query_tokens = {"stream": await minted("/api/stream-tokens"),
                    "stream-job": await minted("/api/stream-tokens", {"jobs": [alices]}),
                    "stream-owner": owner_token,
                    "stream-tag": await minted("/api/stream-tokens", {"tags": ["launch"]}),
                    "stream-writer": await minted("/api/stream-tokens", {"owner": "alice", "types": ["noop"],
                                                                         "rights": ["submit", "cancel", "signal"]}),
                    "form": await minted("/api/form-tokens"),
                    "expired": signer._sign("stream", signer.token_id(ADMIN) or "", -60.0),
                    "tampered": forged(signer, owner_token)}
    headers = {"none": {}, "wrong": bearer("not-a-token"), "admin": bearer(ADMIN),
               **{str(role): bearer(secret) for role, secret in ROLE_TOKENS.items()}}
    schema = (await client.get("/schema/openapi.json")).json()
    operations = [(method.upper(), path) for path, item in schema["paths"].items() if path.startswith("/api/")
                  and path not in SKIPPED for method in item if method in ("get", "post", "put", "delete")]
    assert len(operations) >= 35, operations
    wrong: list[tuple[str, str, str, int, str]] = []
    for method, path in operations:
        for job_id in (alices, bobs) if JOB_PATH.fullmatch(path) else (alices,):
            url = concrete(path, job_id)
            if path == "/api/events":
                url += f"?jobs={job_id}"  # (and without: below)
            for credential in [*headers, *query_tokens]:
                if credential in query_tokens:
                    sep = "&" if "?" in url else "?"
                    status = await status_of(client, method, f"{url}{sep}access_token={query_tokens[credential]}", {})
                else:
                    status = await status_of(client, method, url, headers[credential])
                want = expected(credential, method, path, url, alices)
                if (want == "pass" and status in (401, 403)) or (want != "pass" and str(status) != want):
                    wrong.append((credential, method, url, status, want))
    firehose = await status_of(client, "GET", f"/api/events?access_token={query_tokens['stream-owner']}", {})
    assert firehose == 403
    assert not wrong, "\n".join(map(str, wrong))
