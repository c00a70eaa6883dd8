"""The types `watch()` and `replay()` yield: the contract's own event Structs plus the stream's
`Snapshot` and `ReplayEnded`. Match on them:

    match event:
        case ProgressReported(fraction=f) if f is not None: ...
        case JobCompleted(result=result): ...
"""

from jobline.contract.events import (
    ArtifactStored,
    CancelRequested,
    JobCancelled,
    JobCompleted,
    JobCreated,
    JobEvent,
    JobExpired,
    JobFailed,
    JobRetrying,
    JobStarted,
    LogLineWritten,
    ProgressReported,
    StepFinished,
    StepStarted,
    TerminalEvent,
    WebhookAttempted,
)

from .stream import ReplayEnded, Snapshot, StreamEvent

__all__ = [
    "ArtifactStored", "CancelRequested", "JobCancelled", "JobCompleted", "JobCreated", "JobEvent", "JobExpired",
    "JobFailed", "JobRetrying", "JobStarted", "LogLineWritten", "ProgressReported", "ReplayEnded", "Snapshot",
    "StepFinished", "StepStarted", "StreamEvent", "TerminalEvent", "WebhookAttempted",
]
