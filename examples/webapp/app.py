"""A small web app of your own that shows Jobline jobs on its pages (run by tests/test_clients_web.py).

    JOBLINE_URL=http://127.0.0.1:8000 JOBLINE_TOKEN=… python examples/webapp/app.py   # → http://127.0.0.1:8500/

It is a separate process on its own origin. Its pages load `jobline.js` from the gateway and use
`<jobline-progress>` and `<jobline-upload>`; the upload form also works without JavaScript (a plain
multipart form posted straight to Jobline, which redirects back here). The gateway must list this
app's origin in JOBLINE_CORS_ORIGINS. The API token never reaches the browser: this app's backend
trades it for short-lived tokens (`/token`) made for the signed-in user: for streams, read-only
and good for that user's jobs only (another user's job is 404 to the page); for forms, submit-only,
each job stamped with the user as its owner. Users here are a name in a cookie (`/signin?user=…`,
`guest` without one): a real app has its own sign-in.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import Any

import uvicorn
from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import Cookie
from litestar.static_files import create_static_files_router

from jobline.client import AsyncClient

JOBLINE_URL = os.environ.get("JOBLINE_URL", "http://127.0.0.1:8000").rstrip("/")
TOKEN = os.environ.get("JOBLINE_TOKEN") or None
PORT = int(os.environ.get("WEBAPP_PORT", "8500"))
HOST = os.environ.get("WEBAPP_HOST", "127.0.0.1")
HERE = Path(__file__).parent
OWNER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}")  # (Jobline's owner ids)
jobline = AsyncClient(JOBLINE_URL, token=TOKEN)


def page(title: str, body: str) -> Response[str]:
    gateway = html.escape(JOBLINE_URL)
    csp = (f"default-src 'self'; script-src 'self' {JOBLINE_URL}; connect-src 'self' {JOBLINE_URL}; "
           f"media-src {JOBLINE_URL}; img-src 'self' {JOBLINE_URL}; style-src 'self'; "
           f"form-action 'self' {JOBLINE_URL}; object-src 'none'; base-uri 'none'")
    document = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<link rel="stylesheet" href="/static/page.css">
<script type="module" src="{gateway}/jobline.js"></script>
<script type="module" src="/static/page.js"></script></head>
<body data-gateway="{gateway}" data-tokens="{'1' if TOKEN else ''}"><h1>{html.escape(title)}</h1>{body}</body></html>"""
    return Response(document, media_type=MediaType.HTML, headers={"Content-Security-Policy": csp})


def user_of(request: Request[Any, Any, Any]) -> str:
    """The signed-in user (this example's stand-in for a real sign-in)."""
    name = request.cookies.get("user", "guest")
    return name if OWNER.fullmatch(name) else "guest"


async def short_token(purpose: str, user: str) -> str | None:
    """A token for this user's page: its jobs to read, or a form whose jobs are the user's."""
    if TOKEN is None:
        return None
    if purpose == "form":
        return await jobline.form_token(owner=user)
    return await jobline.stream_token(owner=user)


@get("/signin")
async def signin(user: str) -> Response[None]:
    return Response(None, status_code=303, headers={"Location": "/"},
                    cookies=[Cookie(key="user", value=user if OWNER.fullmatch(user) else "guest", httponly=True,
                                    samesite="lax", path="/")])


@get("/")
async def index(request: Request[Any, Any, Any]) -> Response[str]:
    token = await short_token("form", user_of(request))
    action = f"{JOBLINE_URL}/api/jobs" + (f"?access_token={token}" if token else "")
    back = f"http://{HOST}:{PORT}/jobs/{{id}}"
    return page("Upload a video", f"""
<h2>Without JavaScript: a plain form</h2>
<form id="plain" method="post" enctype="multipart/form-data" action="{html.escape(action)}">
  <input type="hidden" name="type" value="video-transcode">
  <input type="hidden" name="redirect" value="{html.escape(back)}">
  <label>Video <input type="file" name="upload" accept="video/*" required></label>
  <label>Height <select name="height"><option>120</option><option selected>360</option><option>720</option></select></label>
  <button type="submit">Transcode</button>
</form>
<h2>With the element: an upload bar, then the job</h2>
<jobline-upload id="upload" type="video-transcode" field="upload" params='{{"height": 120}}'
                accept="video/*"></jobline-upload>""")


@get("/jobs/{job_id:str}")
async def job_page(job_id: str) -> Response[str]:
    return page("Your video", f'<jobline-progress id="progress" job="{html.escape(job_id)}" log-lines="8"></jobline-progress>'
                              '<p><a href="/">Upload another</a></p>')


@get("/token")
async def token(request: Request[Any, Any, Any], purpose: str = "stream") -> Response[dict[str, str | None]]:
    # The page says which jobs it reads (`jobs=`): a token for the user's jobs covers them, and no other.
    return Response({"token": await short_token("form" if purpose == "form" else "stream", user_of(request))},
                    headers={"Cache-Control": "no-store"})


app = Litestar([signin, index, job_page, token, create_static_files_router(path="/static", directories=[HERE / "static"])])

if __name__ == "__main__":
    print(f"example web app on http://{HOST}:{PORT}/ (Jobline at {JOBLINE_URL})", flush=True)
    uvicorn.run(app, host=HOST, port=PORT, log_level="warning")
