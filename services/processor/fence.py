"""Writes to a job's run chain (`jobs.<id>.run.*`): each one a compare-and-set on its last sequence.

The chain is started → [retrying → started …] → ended. A worker remembers the sequence of its own
`started`; its `retrying` or terminal event is stored only if nothing was written after that, so a
worker whose attempt was superseded (it was presumed dead and the job redelivered) cannot end the
job or schedule a retry: it is fenced out by the broker.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from jobline.contract.events import JobEvent, encoder, job_event_decoder
from jobline.contract.names import Names
from jobline.contract.publishing import WRONG_LAST_SEQUENCE_ERR, fenced, subject_of
from jobline.runtime.publishing import publish_reliably


class Fenced(Exception):
    """The chain moved on: another writer (a newer attempt, a cancel, an end) came first."""


class RunChain:
    def __init__(self, js: JetStreamContext, names: Names, job_id: str, last_seq: int = 0, flow: str | None = None,
                 webhook: bool = False):
        self._js = js
        self._names = names
        self.job_id = job_id
        self.last_seq = last_seq
        self.flow = flow  # a job of a flow: its end is signalled to the flow runner (contract/flows.py)
        self.webhook = webhook  # a job with a webhook: its end is signalled to the dispatcher (contract/webhooks.py)

    async def read_last(self) -> JobEvent | None:
        """The chain's last event (and its sequence into `last_seq`), None when empty."""
        try:
            msg = await self._js.get_last_msg(self._names.jobs_stream, self._names.run_chain(self.job_id), direct=True)
        except NotFoundError:
            self.last_seq = 0
            return None
        self.last_seq = int(msg.seq or 0)
        return job_event_decoder.decode(msg.data or b"")

    async def append(self, event: JobEvent, msg_id: str) -> int:
        try:
            ack = await publish_reliably(self._js, subject_of(self._names, event), encoder.encode(event),
                                         msg_id=msg_id, headers=fenced(self._names, self.job_id, self.last_seq))
        except APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE_ERR:
                raise Fenced(f"job {self.job_id}: run chain moved past {self.last_seq}") from exc
            raise
        self.last_seq = ack.seq
        return ack.seq
