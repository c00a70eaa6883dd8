"""Jobs that wait for a signal (`await ctx.wait_for_signal(name)`): what a handler sees, and how the
wait is kept without holding a worker.

The handler asks for the signal; if it has come (the first message on `jobs.<id>.signal.<name>`),
the call returns its payload at once. If not, the attempt ends `awaiting_signal` (`AwaitSignal`
leaves the handler like a return), its slot is freed, and the job is `waiting`. The conductors'
signal runner publishes the job's created event again when both the wait and the signal are there
(runtime/signal_waits.py), so the handler runs
again from the top and this time the call returns the payload: the work before the wait is done
again (keep it cheap, or guard it with what the attempt can see). A timeout is a JetStream message
schedule held by the broker: at `timeout_at` it publishes a `timed_out` signal on the same subject,
and the call raises `SignalTimeout` in the run that follows.
"""

from __future__ import annotations


class SignalTimeout(Exception):
    """`ctx.wait_for_signal(name, timeout_s=…)` waited `timeout_s` without the signal."""

    def __init__(self, name: str, at: float):
        super().__init__(f"no signal {name!r} came before the wait's timeout")
        self.name = name
        self.at = at


class AwaitSignal(BaseException):
    """Ends the attempt waiting for the signal. A BaseException so that a handler's own
    `except Exception` around the wait does not swallow it."""

    def __init__(self, name: str, timeout_s: float | None):
        super().__init__(f"waiting for signal {name!r}")
        self.name = name
        self.timeout_s = timeout_s
