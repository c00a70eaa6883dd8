"""The processor: runs jobs and reports their progress, steps, log lines and result as events."""

from .context import JobContext
from .registry import PermanentError, task
from .signals import SignalTimeout

__all__ = ["JobContext", "PermanentError", "SignalTimeout", "task"]
