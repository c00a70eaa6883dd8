"""Webhooks: a POST when a job ends, following the Standard Webhooks spec.

Deliveries run from one durable consumer on `webhooks.*.due` shared by every conductor: the end of
each job that asked for a webhook is signalled there (contract/webhooks.py), so each is handed to
one conductor, jobs without a webhook cost nothing, and a restart loses nothing (an unacked one is
redelivered). The body carries the job's state, folded from its own events in the job stream. Each
attempt is recorded as a `webhook_attempted` event; failures are retried with backoff. Targets are
checked when the job is submitted and again before every send: private, loopback, link-local and
metadata addresses and non-http(s) schemes are refused unless JOBLINE_WEBHOOK_ALLOW admits them;
redirects are not followed; a timeout and a response cap apply.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Sequence

import httpx
import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from jobline.contract.events import WebhookAttempted, encoder
from jobline.contract.names import Names
from jobline.contract.publishing import subject_of
from jobline.contract.webhooks import due_decoder
from jobline.jobs.timeline import decoded, fold, read_events
from jobline.jobs.webhook_targets import WebhookTargetRefused, check_target
from jobline.runtime.consume import DurableTasks, shared_durable
from jobline.runtime.publishing import publish_reliably

from .settings import WebhookSettings

log = logging.getLogger(__name__)


def sign(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """`webhook-signature`: `v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>` per secret (two
    during a rotation, space separated). Secrets are `whsec_<base64 key>`, or any text."""
    signatures = []
    for secret in secrets:
        key = base64.b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") else secret.encode()
        digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
        signatures.append("v1," + base64.b64encode(digest).decode())
    return " ".join(signatures)


class WebhookDispatcher:
    def __init__(self, nc: Client, js: JetStreamContext, names: Names, settings: WebhookSettings,
                 on_attempt: Callable[[bool], None] = lambda delivered: None):
        self._nc = nc
        self._on_attempt = on_attempt
        self._js = js
        self._names = names
        self._settings = settings
        self._tasks: DurableTasks | None = None
        self._http = httpx.AsyncClient(follow_redirects=False, timeout=settings.timeout_s)

    async def start(self) -> None:
        names = self._names
        with contextlib.suppress(NotFoundError):  # (the gateways' durable of every job end, before the conductor)
            await self._js.delete_consumer(names.jobs_stream, names.legacy_webhooks_durable)
        config = shared_durable(names.webhooks_durable, "conductors: webhook deliveries", self._settings.timeout_s * 3,
                                filter_subject=names.all_webhooks_due)
        # At most 16 deliveries in flight; a break (a restarted server, silence) asks again.
        self._tasks = DurableTasks(self._nc, self._js, names.webhooks_stream, config, self._deliver, limit=16,
                                   name="webhook dispatcher")
        await self._tasks.start()

    async def stop(self) -> None:
        if self._tasks is not None:
            await self._tasks.stop()
        await self._http.aclose()

    async def _deliver(self, msg: Msg) -> None:
        try:
            due = due_decoder.decode(msg.data)
        except msgspec.DecodeError:
            await msg.term()
            return
        state = fold(decoded(await read_events(self._js, self._names, due.job_id, timeout=30)))
        if state is None or not state.webhook_url or not state.is_terminal:
            log.warning("webhook of job %s: its ended state is not in the job stream; not sent", due.job_id)
            await msg.ack()
            return
        attempt = msg.metadata.num_delivered or 1
        url = state.webhook_url
        body = encoder.encode({"type": f"job.{state.status}", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "data": state})
        msg_id = f"job_{due.job_id}_{state.status}"
        began = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            await check_target(url, self._settings.allow)  # again: DNS may have changed
            timestamp = int(time.time())
            headers = {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(timestamp),
                       "webhook-signature": sign(self._settings.secrets, msg_id, timestamp, body),
                       "user-agent": "jobline-webhooks/1"}
            async with self._http.stream("POST", url, content=body, headers=headers) as response:
                status = response.status_code
                received = 0
                async for chunk in response.aiter_bytes():
                    received += len(chunk)
                    if received > self._settings.max_response_bytes:
                        break  # we only need the status; a huge answer is not read
            if not 200 <= status < 300:
                error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
        except WebhookTargetRefused as exc:
            error = f"refused: {exc}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        delivered = error is None
        final = delivered or attempt >= self._settings.max_attempts or (error or "").startswith("refused")
        record = WebhookAttempted(ts=time.time(), job_id=due.job_id, attempt=attempt, url=url, delivered=delivered,
                                  status=status, error=error, final=final, duration_s=round(time.monotonic() - began, 4))
        await publish_reliably(self._js, subject_of(self._names, record), encoder.encode(record),
                               msg_id=f"{due.job_id}:webhook:{attempt}")
        self._on_attempt(delivered)
        if final:
            await msg.ack()
        else:
            delay = min(self._settings.backoff_s * 2 ** (attempt - 1), 3600)
            await msg.nak(delay=delay)
