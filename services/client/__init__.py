"""Jobline's client library: submit jobs, watch them live, wait for results — from any Python code.

    from jobline.client import Client

    with Client("http://127.0.0.1:8000") as jobline:
        print(jobline.submit("sleep", {"seconds": 2}).wait().result)

`AsyncClient` is the same API for asyncio code; the event types `watch()` yields are in
`jobline.client.events`. docs/clients.md shows more.
"""

from jobline.contract.events import LogRow
from jobline.contract.job_state import ArtifactInfo, JobState, StepState
from jobline.contract.queues import QueueView
from jobline.contract.schedules import MissedTicks, ScheduleView
from jobline.contract.workers import WorkerView

from . import events
from .aio import Accepted, AsyncClient, AsyncJob
from .errors import ApiError, JobCancelled, JobError, JobExpired, JobFailed, JoblineError, Unreachable
from .files import Upload
from .stream import RawEvent, ReplayEnded, Snapshot, StreamEvent
from .sync import Client, Job

__all__ = [
    "Accepted", "ApiError", "ArtifactInfo", "AsyncClient", "AsyncJob", "Client", "Job", "JobCancelled", "JobError",
    "JobExpired", "JobFailed", "JobState", "JoblineError", "LogRow", "MissedTicks", "QueueView", "RawEvent", "ReplayEnded",
    "ScheduleView", "Snapshot", "StepState", "StreamEvent", "Unreachable", "Upload", "WorkerView", "events",
]
