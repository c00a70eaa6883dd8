"""Telling the flow runner that a job of a flow ended: whoever ends it (the processor that ran it,
the gateway that cancelled it, the flow runner that failed it unrun) publishes this right after
the job's terminal event, and again whenever it finds the job already ended (a crash between the
two), so the signal is never lost; `Nats-Msg-Id` and the runner's record make repeats harmless."""

from __future__ import annotations

from nats.js import JetStreamContext

from jobline.contract.events import encoder
from jobline.contract.flows import FlowSignal
from jobline.contract.names import Names

from .publishing import publish_reliably


async def signal_flow(js: JetStreamContext, names: Names, flow: str, job_id: str, status: str,
                      msg_id: str | None = None) -> None:
    """`status`: the job's end, or `suspended` (it waits for children it spawned: `msg_id` then
    names the attempt, since the job signals again when it ends)."""
    signal = FlowSignal(flow=flow, job_id=job_id, status=status)
    await publish_reliably(js, names.flow_ended(flow), encoder.encode(signal), msg_id=msg_id or f"{job_id}:flow-ended",
                           give_up_after=30.0)
