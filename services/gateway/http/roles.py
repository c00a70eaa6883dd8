"""What each API token may do: its role.

`JOBLINE_API_TOKENS` lists tokens, each optionally prefixed with its role — `viewer:<token>`; a
token without a prefix is an admin, as every token was before roles. One table, by method and
path:

| role | may |
|---|---|
| admin | everything |
| operator | read all; cancel, delete jobs (one or by filter); cancel batches, flows; signal jobs; queues; schedules; drain |
| backend | read everything; submit jobs, batches, flows, uploads; cancel and signal jobs; mint form tokens |
| viewer | read everything |

Every role may mint stream tokens that read (one that may also submit, cancel or signal only a role
that may) and sign the browser in. A refused request is
`403` naming the role; each write a token makes is recorded (who, what, the answer) by `audit`.
"""

from __future__ import annotations

import logging
import re
from enum import StrEnum

log = logging.getLogger("jobline.gateway.audit")


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    BACKEND = "backend"
    VIEWER = "viewer"


READS = frozenset({"GET", "HEAD", "OPTIONS"})
_EVERYONE = ("/api/stream-tokens",)
_ONE_JOB = re.compile(r"/api/jobs/[^/]+")  # (DELETE: delete an ended job from history)
_SIGNAL = r"jobs/[^/]+/signals/[^/]+"  # (an external callback from the app's backend, or a person's approval)
_SUBMITS = re.compile(rf"/api/(jobs|jobs/form|batches|flows|uploads|form-tokens|jobs/[^/]+/cancel|{_SIGNAL})")
_OPERATES = re.compile(r"/api/((jobs|batches|flows)/[^/]+/cancel|jobs/(cancel|retry|delete)|queues(/.*)?|schedules(/.*)?"
                       rf"|workers/[^/]+/(drain|resume)|alerts(/.*)?|{_SIGNAL})")


def parse_token(entry: str) -> tuple[str, Role]:
    """(token, role) of one JOBLINE_API_TOKENS entry: `role:token`, or a bare token (admin)."""
    prefix, sep, rest = entry.partition(":")
    if sep and prefix in {role.value for role in Role} and rest:
        return rest, Role(prefix)
    return entry, Role.ADMIN


def allows(role: Role, method: str, path: str) -> bool:
    if role is Role.ADMIN or method in READS or path in _EVERYONE:
        return True
    if role is Role.BACKEND:
        return method == "POST" and _SUBMITS.fullmatch(path) is not None
    if role is Role.OPERATOR:
        return _OPERATES.fullmatch(path) is not None or (method == "DELETE" and _ONE_JOB.fullmatch(path) is not None)
    return False


def can(role: Role) -> list[str]:
    """What the role may do, as the dashboard asks (`GET /api/session`): read, submit, operate."""
    return {Role.ADMIN: ["read", "submit", "operate"], Role.OPERATOR: ["read", "operate"],
            Role.BACKEND: ["read", "submit"], Role.VIEWER: ["read"]}[role]


def is_operation(method: str, path: str) -> bool:
    """A change an operator makes (what `audit` records)."""
    return method not in READS and (_OPERATES.fullmatch(path) is not None
                                    or (method == "DELETE" and _ONE_JOB.fullmatch(path) is not None))


def audit(token_id: str, role: Role, method: str, path: str, status: int) -> None:
    """One record per write made with an API token: who (the token's id, never the token), what, the answer."""
    log.info("audit token=%s role=%s %s %s -> %d", token_id, role, method, path, status)
