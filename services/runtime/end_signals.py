"""Telling the conductor that a job ended, when it has something to do about it: a job of a flow
(its flow runner releases what waited for it) and a job that asked for a webhook (its dispatcher
sends it). Whoever ends such a job (the processor that ran it, the gateway that cancelled it, the
conductor that failed it unrun) publishes the signals right after the job's terminal event, and
again whenever it finds the job already ended (a crash between the two), so none is ever lost;
`Nats-Msg-Id` and the receivers' records make repeats harmless. A job that is neither costs
nothing here."""

from __future__ import annotations

from nats.js import JetStreamContext

from jobline.contract.events import encoder
from jobline.contract.flows import FlowSignal
from jobline.contract.names import Names
from jobline.contract.webhooks import WebhookDue

from .publishing import publish_reliably


async def signal_flow(js: JetStreamContext, names: Names, flow: str, job_id: str, status: str,
                      msg_id: str | None = None) -> None:
    """`status`: the job's end, or `suspended` (it waits for children it spawned: `msg_id` then
    names the attempt, since the job signals again when it ends)."""
    signal = FlowSignal(flow=flow, job_id=job_id, status=status)
    await publish_reliably(js, names.flow_ended(flow), encoder.encode(signal), msg_id=msg_id or f"{job_id}:flow-ended",
                           give_up_after=30.0)


async def signal_end(js: JetStreamContext, names: Names, job_id: str, status: str, *, flow: str | None,
                     webhook: bool) -> None:
    """The job ended with `status`: signal its flow and its webhook, if it has them."""
    if flow is not None:
        await signal_flow(js, names, flow, job_id, status)
    if webhook:
        due = WebhookDue(job_id=job_id, status=status)
        await publish_reliably(js, names.webhook_due(job_id), encoder.encode(due), msg_id=f"{job_id}:webhook-due",
                               give_up_after=30.0)
