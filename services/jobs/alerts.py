"""Failure alert rules as operators set them (the gateway's `/api/alerts`): checked, kept in the
`alerts` bucket; the conductors evaluate them (conductor/alert_watch.py)."""

from __future__ import annotations

import time

from nats.js import JetStreamContext

from jobline.contract.alerts import (
    MAX_WINDOW_S,
    MIN_WINDOW_S,
    AlertRecord,
    AlertRule,
    AlertState,
    alerts_bucket_config,
    is_valid_alert_name,
)
from jobline.contract.names import Names, is_valid_job_type
from jobline.runtime.buckets import bucket_keys, key_value
from jobline.runtime.kv_records import KvRecords

from .checks import JobChecks
from .errors import Invalid, NotFound

MAX_FAILURES = 100_000


def _refused(key: str, detail: str) -> Invalid:
    return Invalid(detail, title="Invalid alert rule", key=key)


class AlertRules:
    def __init__(self, js: JetStreamContext, names: Names, records: KvRecords[AlertRecord], checks: JobChecks | None):
        self._js, self._names, self.records, self._checks = js, names, records, checks

    @classmethod
    async def open(cls, js: JetStreamContext, names: Names, replicas: int, checks: JobChecks | None = None) -> AlertRules:
        kv = await key_value(js, alerts_bucket_config(names, replicas))
        return cls(js, names, KvRecords(kv, AlertRecord), checks)

    async def check(self, rule: AlertRule) -> None:
        if rule.type is not None and not is_valid_job_type(rule.type):
            raise _refused("type", f"{rule.type!r} is not a job type name")
        if not 1 <= rule.min_failures <= MAX_FAILURES:
            raise _refused("min_failures", f"min_failures must be from 1 to {MAX_FAILURES}")
        if not MIN_WINDOW_S <= rule.window_s <= MAX_WINDOW_S:
            raise _refused("window_s", f"window_s must be from {MIN_WINDOW_S:g} to {MAX_WINDOW_S:g} seconds")
        if rule.min_rate is not None and not 0 < rule.min_rate <= 1:
            raise _refused("min_rate", "min_rate is a share of the jobs that ended: above 0, at most 1")
        if rule.webhook_url is not None:
            if self._checks is None:
                raise _refused("webhook_url", "webhooks are not configured here")
            await self._checks.check_webhook(rule.webhook_url)

    @staticmethod
    def _named(name: str) -> None:
        if not is_valid_alert_name(name):
            raise Invalid("an alert's name is 1 to 40 lower-case letters, digits, _ and -, starting with a letter "
                          "or digit", title="Invalid alert name", key="name", source="path")

    async def put(self, name: str, rule: AlertRule) -> AlertRecord:
        """Create or replace the rule (what it found so far starts over: the rule changed)."""
        self._named(name)
        await self.check(rule)
        record = AlertRecord(name=name, rule=rule, state=AlertState(), updated_at=time.time())

        def replaced(current: AlertRecord | None) -> AlertRecord:
            return record

        await self.records.update(name, replaced)
        return record

    async def require(self, name: str) -> AlertRecord:
        record = await self.records.value(name) if is_valid_alert_name(name) else None
        if record is None:
            raise NotFound(f"no alert rule {name!r}", title="Unknown alert")
        return record

    async def all(self) -> list[AlertRecord]:
        found = [await self.records.value(name) for name in await bucket_keys(self._js, self._names.alerts_bucket)]
        return [record for record in found if record is not None]

    async def delete(self, name: str) -> None:
        await self.require(name)
        await self.records.delete(name)
