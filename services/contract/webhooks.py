"""Webhooks: a job that asked for one (`webhook_url`) has its end signalled on `webhooks.<id>.due`
(stream WEBHOOKS) by whoever ended it — the processor, the gateway that cancelled it, the conductor
that failed it unrun — right after its terminal event, and again whenever it finds the job ended
already (a crash between the two), so no delivery is lost. The conductors share one durable of
these and send each one (Standard Webhooks, signed, retried with backoff); jobs without a webhook
cost nothing here. The stream's configuration is with the others (streams.py)."""

from __future__ import annotations

from typing import Final

import msgspec


class WebhookDue(msgspec.Struct, frozen=True, kw_only=True):
    """`webhooks.<id>.due`: the job ended with this status and wants its webhook."""

    job_id: str
    status: str


due_decoder: Final = msgspec.json.Decoder(WebhookDue)

