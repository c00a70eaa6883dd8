"""Webhooks: a POST when a job ends, following the Standard Webhooks spec.

Deliveries run from one durable consumer on `jobs.*.run.ended` shared by every gateway replica,
so each job end is handed to one replica, and a restart loses nothing (an unacked end is
redelivered). Each attempt is recorded as a `webhook_attempted` event; failures are retried with
backoff. Targets are checked when the job is submitted and again before every send: private,
loopback, link-local and metadata addresses and non-http(s) schemes are refused unless
JOBLINE_WEBHOOK_ALLOW admits them; redirects are not followed; a timeout and a response cap apply.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Sequence

import httpx
import msgspec
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from jobline.contract.events import WebhookAttempted, encoder, job_event_decoder, kind_of
from jobline.contract.publishing import subject_of
from jobline.runtime.consume import DurableTasks
from jobline.runtime.publishing import publish_reliably

from .core import Core, lookup_job
from .history import HistoryUnavailable
from .webhook_targets import WebhookTargetRefused, check_target

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
    def __init__(self, core: Core):
        self._core = core
        self._settings = core.settings
        self._tasks: DurableTasks | None = None
        self._http = httpx.AsyncClient(follow_redirects=False, timeout=self._settings.webhook_timeout_s)

    async def start(self) -> None:
        names = self._settings.names
        config = ConsumerConfig(
            durable_name=names.webhooks_durable, deliver_policy=DeliverPolicy.NEW, ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self._settings.webhook_timeout_s * 3, max_deliver=-1, filter_subject=names.all_job_ends,
            description="gateway: webhook deliveries",
        )
        # At most 16 deliveries in flight; a break (a restarted server, silence) asks again.
        self._tasks = DurableTasks(self._core.nc, self._core.js, names.jobs_stream, config, self._deliver, limit=16,
                                   name="webhook dispatcher")
        await self._tasks.start()

    async def stop(self) -> None:
        if self._tasks is not None:
            await self._tasks.stop()
        await self._http.aclose()

    async def _deliver(self, msg: Msg) -> None:
        try:
            event = job_event_decoder.decode(msg.data)
        except msgspec.DecodeError:
            await msg.term()
            return
        state = self._core.read_model.get(event.job_id)
        if state is None:
            await self._core.read_model.wait_for(msg.metadata.sequence.stream, 10)
            try:  # an end delivered late may belong to a job that has left memory since
                state = await lookup_job(self._core, event.job_id)
            except HistoryUnavailable:
                await msg.nak(delay=5.0)  # cannot tell now whether it wants a webhook: later
                return
        if state is None or not state.webhook_url:
            await msg.ack()
            return
        attempt = msg.metadata.num_delivered or 1
        url = state.webhook_url
        body = encoder.encode({"type": f"job.{kind_of(event)}", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "data": state})
        msg_id = f"job_{event.job_id}_{kind_of(event)}"
        began = time.monotonic()
        status: int | None = None
        error: str | None = None
        try:
            await check_target(url, self._settings.webhook_allow)  # again: DNS may have changed
            timestamp = int(time.time())
            headers = {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(timestamp),
                       "webhook-signature": sign(self._settings.webhook_secrets, msg_id, timestamp, body),
                       "user-agent": "jobline-webhooks/1"}
            async with self._http.stream("POST", url, content=body, headers=headers) as response:
                status = response.status_code
                received = 0
                async for chunk in response.aiter_bytes():
                    received += len(chunk)
                    if received > self._settings.webhook_max_response_bytes:
                        break  # we only need the status; a huge answer is not read
            if not 200 <= status < 300:
                error = f"HTTP {status}" + (" (redirects are not followed)" if 300 <= status < 400 else "")
        except WebhookTargetRefused as exc:
            error = f"refused: {exc}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        delivered = error is None
        final = delivered or attempt >= self._settings.webhook_max_attempts or (error or "").startswith("refused")
        record = WebhookAttempted(ts=time.time(), job_id=event.job_id, attempt=attempt, url=url, delivered=delivered,
                                  status=status, error=error, final=final, duration_s=round(time.monotonic() - began, 4))
        await publish_reliably(self._core.js, subject_of(self._settings.names, record), encoder.encode(record),
                               msg_id=f"{event.job_id}:webhook:{attempt}")
        if final:
            await msg.ack()
        else:
            delay = min(self._settings.webhook_backoff_s * 2 ** (attempt - 1), 3600)
            await msg.nak(delay=delay)
