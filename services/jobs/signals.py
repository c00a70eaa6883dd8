"""Sending a job a signal (`POST /api/jobs/<id>/signals/<name>`): once per name, kept until its
handler asks for it.

The signal is stored on `jobs.<id>.signal.<name>` only if that subject is empty (the broker
checks), so of two senders one wins and the other is told it came too late, also across gateways.
It is stored whether or not the handler waits for it yet: a wait that comes later finds it. Resuming
a waiting job is the conductors' (conductor/signal_runner.py), not the sender's.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.errors import APIError

from jobline.contract.events import JobSignalled, encoder
from jobline.contract.job_state import JobState
from jobline.contract.names import InvalidName, Names, checked_signal_name
from jobline.contract.publishing import WRONG_LAST_SEQUENCE_ERR, expect_last
from jobline.runtime.publishing import publish_reliably
from jobline.runtime.signal_waits import first_signal

from .errors import Conflict, Malformed, Unavailable

MAX_SIGNAL_BYTES = 64 * 1024  # a payload is a decision and its reasons, not data (that goes in an upload)


class SignalSent(msgspec.Struct, kw_only=True):
    job_id: str
    name: str
    at: float
    resumes: bool  # the job waits for it now (it runs again shortly); else it is kept for its wait


async def send_signal(js: JetStreamContext, names: Names, state: JobState, name: str, payload: Any) -> SignalSent:
    """`state`: the job as found (JobReader.find). Conflict when it ended or the signal came (or its
    wait timed out)."""
    try:
        checked_signal_name(name)
    except InvalidName as exc:
        raise Malformed(str(exc), title="Bad signal name", key="signal", source="path") from None
    job_id = state.id
    if state.is_terminal:
        raise Conflict(f"job {job_id} ended {state.status}; it waits for no signal", title="Job already ended",
                       status_now=state.status)
    subject = names.job_signal(job_id, name)
    signal = JobSignalled(ts=time.time(), job_id=job_id, name=name, payload=payload)
    try:
        # (a random id: a retry of this very publish is a duplicate, another request's is refused)
        await publish_reliably(js, subject, encoder.encode(signal), msg_id=f"{job_id}:{name}:{time.time_ns()}",
                               headers=expect_last(subject, 0), give_up_after=10.0)
    except APIError as exc:
        if exc.err_code != WRONG_LAST_SEQUENCE_ERR:
            raise
        raise await _taken(js, names, job_id, name) from None
    except (NatsTimeout, NoRespondersError) as exc:
        raise Unavailable(f"the signal could not be stored ({type(exc).__name__}); send it again",
                          title="Event store unavailable") from exc
    return SignalSent(job_id=job_id, name=name, at=signal.ts, resumes=state.awaiting_signal == name)


async def _taken(js: JetStreamContext, names: Names, job_id: str, name: str) -> Conflict:
    """Why the signal's subject was not empty: it was sent, or its wait timed out."""
    first = await first_signal(js, names, job_id, name)
    if first is not None and first.timed_out:
        return Conflict(f"job {job_id} stopped waiting for signal {name!r}: its wait timed out",
                        title="Signal wait timed out", signal=name)
    return Conflict(f"job {job_id} has had its signal {name!r} already (a signal is sent once)",
                    title="Signal already sent", signal=name)
