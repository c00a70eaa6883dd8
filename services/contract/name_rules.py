"""What a name may be: the patterns of ids, types, schedule and signal names, the priority bands
and owner lanes, and the checks that keep a name from ever injecting `.`, `*` or `>` into a subject.
names.py builds every subject and stream from names that passed these (and re-exports them).
"""

from __future__ import annotations

import hashlib
import re

# Job ids and type names become subject tokens: they must never carry `.`, `*`, `>` or spaces.
JOB_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
JOB_TYPE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_JOB_ID_RE = re.compile(JOB_ID_PATTERN)
_JOB_TYPE_RE = re.compile(JOB_TYPE_PATTERN)
NAMESPACE_RE = re.compile(r"^[a-z0-9_-]{0,32}$")
SERVICE_NAME_RE = re.compile(r"^[a-z0-9_-]{1,32}$")

# Signal names (`POST /api/jobs/<id>/signals/<name>`, `ctx.wait_for_signal(name)`) are subject tokens.
SIGNAL_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_SIGNAL_NAME_RE = re.compile(SIGNAL_NAME_PATTERN)


# Recurring schedules: names are lowercase (a job id is `<name>-<tick as YYYYMMDDTHHMMSS>`, so the
# `T` keeps two schedules' job ids apart).
SCHEDULE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
_SCHEDULE_NAME_RE = re.compile(SCHEDULE_NAME_PATTERN)

# Job priorities: 0 (the default, lowest) to 9. A job above 0 is published on its band's own subject
# (`jobs.<id>.created.<type>.p<N>`) so that each band is a queue of its own (queue controls).
PRIORITY_MIN = 0
PRIORITY_MAX = 9
PRIORITY_BANDS = tuple(range(PRIORITY_MAX, PRIORITY_MIN, -1))  # the bands above the default, highest first
ALL_PRIORITIES = (*PRIORITY_BANDS, PRIORITY_MIN)


# Owner lanes: a job with an owner waits in one of its priority's OWNER_LANES lanes (queues), picked by
# a hash of the owner, and processors take the lanes of a priority in turn: one owner's flood fills
# its lane, not the queue every other owner waits in. Owners that hash alike share a lane (and its
# turn); the number is fixed so that the consumers a type can need are bounded (each made when its
# first job comes). Part of the subject layout: changing it moves waiting jobs' lanes.
OWNER_LANES = 128
QUEUE_DURABLE_RE = re.compile(r"^queue-(?P<type>[a-z0-9][a-z0-9_-]{0,63}?)(-P(?P<priority>[0-9])(-L(?P<lane>[0-9]{1,3}))?)?$")


def owner_lane(owner: str | None) -> int | None:
    """The lane of an owner's jobs (None: a job without an owner waits in its priority's own queue)."""
    if owner is None:
        return None
    return int.from_bytes(hashlib.blake2b(owner.encode(), digest_size=8).digest(), "big") % OWNER_LANES


def checked_lane(lane: int) -> int:
    if not 0 <= lane < OWNER_LANES:
        raise InvalidName(f"lane {lane!r} is outside 0..{OWNER_LANES - 1}")
    return lane


def checked_priority(priority: int) -> int:
    if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        raise InvalidName(f"priority {priority!r} is outside {PRIORITY_MIN}..{PRIORITY_MAX}")
    return priority


class InvalidName(ValueError):
    pass


def is_valid_job_id(job_id: str) -> bool:
    return bool(_JOB_ID_RE.fullmatch(job_id))


def is_valid_job_type(job_type: str) -> bool:
    return bool(_JOB_TYPE_RE.fullmatch(job_type))


def is_valid_schedule_name(name: str) -> bool:
    return bool(_SCHEDULE_NAME_RE.fullmatch(name))


def checked_schedule_name(name: str) -> str:
    if not is_valid_schedule_name(name):
        raise InvalidName(f"invalid schedule name {name!r}")
    return name


def checked_job_id(job_id: str) -> str:
    if not is_valid_job_id(job_id):
        raise InvalidName(f"invalid job id {job_id!r}")
    return job_id


def checked_signal_name(name: str) -> str:
    if not _SIGNAL_NAME_RE.fullmatch(name):
        raise InvalidName(f"invalid signal name {name!r}: letters, digits, '_' and '-', at most 64")
    return name


def checked_job_type(job_type: str) -> str:
    if not is_valid_job_type(job_type):
        raise InvalidName(f"invalid job type {job_type!r}")
    return job_type
