"""Failure alerts: a rule per job type (or for every type) — at least `min_failures` jobs failed or
expired within `window_s`, and optionally a failure rate over that window — kept in the `alerts` KV
bucket with what the conductors last found (`AlertState`). While a rule holds, it is *firing*: the
dashboard shows a banner and its webhook gets one `alert.firing` (and one reminder per window while it
lasts), then one `alert.resolved` when it falls.
"""

from __future__ import annotations

import re
from typing import Final

import msgspec
from nats.js.api import KeyValueConfig, StorageType

from .names import Names

ALERT_NAME_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,39}$"
_ALERT_NAME_RE = re.compile(ALERT_NAME_PATTERN)
COUNTED: Final = 200  # failures and ended jobs are counted up to this many per check
MIN_WINDOW_S: Final = 1.0
MAX_WINDOW_S: Final = 7 * 86400.0


class AlertRule(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`PUT /api/alerts/{name}`."""

    type: str | None = None  # the job type it watches; none: every type
    min_failures: int = 5  # it fires with at least this many failed or expired jobs …
    window_s: float = 600.0  # … that ended within this many seconds …
    min_rate: float | None = None  # … and (when set) at least this share of the jobs that ended then (0-1]
    webhook_url: str | None = None  # sent one alert when it fires (a reminder per window) and one when it resolves


ALERT_DELIVERY_ATTEMPTS = 5  # an alert's webhook is tried this many times (backoff: 2, 4, 8, 16 checks)


class AlertState(msgspec.Struct, kw_only=True):
    firing: bool = False
    since: float | None = None  # when it began firing
    failures: int = 0  # at the last check (counted up to COUNTED)
    ended: int = 0
    checked_at: float | None = None
    sent_at: float | None = None  # the last alert sent for this firing
    last_error: str | None = None  # the last alert that could not be delivered, and why
    undelivered: str | None = None  # the alert (its type) still to be delivered: tried again …
    attempts: int = 0  # … so many times so far (at most ALERT_DELIVERY_ATTEMPTS) …
    retry_at: float | None = None  # … next at a check after this


class AlertRecord(msgspec.Struct, kw_only=True):
    name: str
    rule: AlertRule
    state: AlertState = msgspec.field(default_factory=AlertState)
    updated_at: float = 0.0


def is_valid_alert_name(name: str) -> bool:
    return _ALERT_NAME_RE.fullmatch(name) is not None


def alerts_bucket_config(names: Names, replicas: int) -> KeyValueConfig:
    return KeyValueConfig(bucket=names.alerts_bucket, history=1, storage=StorageType.FILE, replicas=replicas)
