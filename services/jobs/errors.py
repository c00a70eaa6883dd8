"""Why a request about jobs cannot be done: the domain's errors, without HTTP.

Each names what it is about where that is a field of the request (`key`, `source`), so the edge can
say it; `within(place)` re-states one about a part of a bigger request (`jobs[3]`, `children[0].job`).
The gateway maps each class to a status (http/problems.py); the conductor logs them.
"""

from __future__ import annotations

from typing import Any


class JobError(Exception):
    """Base: `title` a few words, `detail` the sentence, `errors` the fields at fault, `extra`
    members the answer carries besides (e.g. the `index` of a batch's bad job)."""

    title = "Refused"

    def __init__(self, detail: str, *, key: str | None = None, source: str = "body", message: str | None = None,
                 title: str | None = None, errors: list[dict[str, Any]] | None = None, **extra: Any):
        super().__init__(detail)
        self.detail = detail
        if title is not None:
            self.title = title
        self.errors = errors if errors is not None else \
            ([{"key": key, "source": source, "message": message or detail}] if key is not None else [])
        self.extra = extra

    def within(self, place: str, **extra: Any) -> JobError:
        """The same error about a part of a bigger request: its detail and its fields say where."""
        errors = [{**e, "key": f"{place}.{e['key']}" if e.get("key") else place} for e in self.errors] \
            or [{"key": place, "source": "body"}]
        copy = type(self)(f"{place}: {self.detail}", title=self.title, errors=errors, **{**self.extra, **extra})
        return copy


class Invalid(JobError):
    """The request is readable but asks for what cannot be (an unknown type, a limit out of range)."""

    title = "Invalid request"


class Malformed(JobError):
    """The request cannot be read as what it should be (a mistyped field, a bad id)."""

    title = "Malformed request"


class TooLarge(JobError):
    """Bigger than a limit allows (a job over 256 KiB, a batch over the server's atomic ceiling)."""

    title = "Too large"


class NotFound(JobError):
    title = "Not found"


class Conflict(JobError):
    """The request conflicts with what is stored (a job that ended already, a name taken, a key
    bound to another request)."""

    title = "Conflict"


class Unavailable(JobError):
    """Something it needs did not answer (the event store, the history service); nothing changed."""

    title = "Unavailable"
