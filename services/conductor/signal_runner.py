"""The signal runner: the conductors' shared durable on `jobs.*.signal.*` and `jobs.*.run.awaiting`
(each message to one conductor) resumes a job once both its wait and its signal are there.

A signal (or a wait's timeout, which the broker publishes on the same subject) resumes the job if
its run chain ends with a wait for that very signal; a wait resumes it if its signal came already
(sent while the handler ran, after it had looked). Otherwise the job has not reached its wait yet,
ended, or is past it, and the message only stays in its timeline. A real signal also stops its
wait's timeout from firing. Resuming is refused by the broker when repeated
(runtime/signal_waits.py), so a message handled twice, or both halves finding each other, is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from jobline.contract.events import JobAwaitingSignal, JobSignalled, job_event_decoder
from jobline.contract.names import Names
from jobline.runtime.consume import DurableTasks, shared_durable
from jobline.runtime.signal_waits import first_signal, resume_waiting, unschedule_timeout

log = logging.getLogger(__name__)
ACK_WAIT_S = 10.0


class SignalRunner:
    def __init__(self, nc: Client, js: JetStreamContext, names: Names, on_resumed: Callable[[], None] = lambda: None):
        self._nc, self._js, self._names = nc, js, names
        self._on_resumed = on_resumed
        self._tasks: DurableTasks | None = None

    async def start(self) -> None:
        names = self._names
        config = shared_durable(names.signal_runner_durable, "the conductors' signal runner: resumes waiting jobs",
                                ACK_WAIT_S, filter_subjects=[names.all_signals, names.all_signal_waits])
        self._tasks = DurableTasks(self._nc, self._js, names.jobs_stream, config, self._handle, limit=64,
                                   name="signal runner")
        await self._tasks.start()

    async def stop(self) -> None:
        if self._tasks is not None:
            await self._tasks.stop()

    async def _handle(self, msg: Msg) -> None:
        try:
            event = job_event_decoder.decode(msg.data)
        except msgspec.DecodeError:
            event = None
        if isinstance(event, JobSignalled):
            await self._resume_if_waiting(event)
        elif isinstance(event, JobAwaitingSignal):
            await self._resume_if_signalled(event)
        else:
            log.warning("dropping an undecodable message on %s", msg.subject)
            await msg.term()
            return
        await msg.ack()

    async def _resume_if_signalled(self, awaiting: JobAwaitingSignal) -> None:
        signal = await first_signal(self._js, self._names, awaiting.job_id, awaiting.name)
        if signal is not None:
            await self._resume(signal, awaiting)

    async def _resume_if_waiting(self, signal: JobSignalled) -> None:
        js, names = self._js, self._names
        try:
            raw = await js.get_last_msg(names.jobs_stream, names.run_chain(signal.job_id), direct=True)
            last = job_event_decoder.decode(raw.data or b"")
        except (NotFoundError, msgspec.DecodeError):
            return  # not started yet: the wait, when it comes, finds the signal
        if isinstance(last, JobAwaitingSignal) and last.name == signal.name:
            await self._resume(signal, last)

    async def _resume(self, signal: JobSignalled, awaiting: JobAwaitingSignal) -> None:
        js, names = self._js, self._names
        if not signal.timed_out and awaiting.timeout_at is not None:
            await unschedule_timeout(js, names, signal.job_id, signal.name)
        if await resume_waiting(js, names, awaiting):
            self._on_resumed()
            log.info("job %s resumed by its signal %s%s", signal.job_id, signal.name,
                     " (timed out)" if signal.timed_out else "")
