"""A small web app of your own that shows Jobline jobs on its pages (run by tests/test_clients_web.py).

    JOBLINE_URL=http://127.0.0.1:8000 JOBLINE_TOKEN=… python examples/webapp/app.py   # → http://127.0.0.1:8500/

It is a separate process on its own origin. Its pages load `jobline.js` from the gateway and use
`<jobline-progress>` and `<jobline-upload>`; the upload form also works without JavaScript (a plain
multipart form posted straight to Jobline, which redirects back here). The gateway must list this
app's origin in JOBLINE_CORS_ORIGINS. The API token never reaches the browser: this app's backend
trades it for short-lived tokens (`/token`): for streams, read-only and good for the jobs the page
shows only (a real app checks first that its user may see them); for forms, submit-only.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import uvicorn
from litestar import Litestar, MediaType, Response, get
from litestar.static_files import create_static_files_router

from jobline.client import AsyncClient

JOBLINE_URL = os.environ.get("JOBLINE_URL", "http://127.0.0.1:8000").rstrip("/")
TOKEN = os.environ.get("JOBLINE_TOKEN") or None
PORT = int(os.environ.get("WEBAPP_PORT", "8500"))
HOST = os.environ.get("WEBAPP_HOST", "127.0.0.1")
HERE = Path(__file__).parent
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


async def short_token(purpose: str, jobs: list[str] | None = None) -> str | None:
    if TOKEN is None:
        return None
    if purpose == "form":
        answer = (await jobline.request("POST", "/api/form-tokens", retry="not_sent")).json()
        return str(answer["token"])
    if not jobs:
        return None  # a page reads the jobs it shows, never all of them
    return await jobline.stream_token(jobs)  # (here is where your app checks that its user may see them)


@get("/")
async def index() -> Response[str]:
    token = await short_token("form")
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
async def token(purpose: str = "stream", jobs: str = "") -> Response[dict[str, str | None]]:
    wanted = [job for job in jobs.split(",") if job]
    return Response({"token": await short_token("form" if purpose == "form" else "stream", wanted)},
                    headers={"Cache-Control": "no-store"})


app = Litestar([index, job_page, token, create_static_files_router(path="/static", directories=[HERE / "static"])])

if __name__ == "__main__":
    print(f"example web app on http://{HOST}:{PORT}/ (Jobline at {JOBLINE_URL})", flush=True)
    uvicorn.run(app, host=HOST, port=PORT, log_level="warning")
