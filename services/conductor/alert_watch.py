"""Failure alerts, evaluated: every `check_s` each rule's window is counted in the history service
(failed and expired jobs that ended in it, and all that ended), and a rule that starts or stops
holding is written to the `alerts` bucket at the revision read — so of several conductors exactly one
makes each change, and only that one sends its webhook: one `alert.firing` when it fires, one reminder
per window while it lasts, one `alert.resolved` when it falls (not per job). A delivery that fails is
tried again at the checks after a backoff (two checks, doubling: 30 s, 60 s, … at the default
JOBLINE_ALERT_CHECK_S; five tries in all), each try taken by one conductor the same way, with the
same `webhook-id` (receivers dedupe).

Off the job path: a few history queries per rule per check, whatever the load.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import msgspec

from jobline.contract.alerts import ALERT_DELIVERY_ATTEMPTS, COUNTED, AlertRecord
from jobline.contract.events import encoder
from jobline.contract.history import JobFilter
from jobline.contract.vocabulary import TERMINAL_STATUSES, JobStatus
from jobline.jobs.alerts import AlertRules
from jobline.jobs.history_client import HistoryClient, HistoryUnavailable
from jobline.jobs.webhook_targets import WebhookTargetRefused, check_target
from jobline.runtime.kv_records import RecordKeptChanging
from jobline.runtime.tasks import cancel_and_wait

from .settings import WebhookSettings
from .webhooks import sign

log = logging.getLogger(__name__)
FAILED: list[str] = [JobStatus.FAILED, JobStatus.EXPIRED]


class AlertWatch:
    def __init__(self, rules: AlertRules, history: HistoryClient, webhooks: WebhookSettings, check_s: float):
        self._rules, self._history, self._webhooks, self._check_s = rules, history, webhooks, check_s
        self._http = httpx.AsyncClient(follow_redirects=False, timeout=webhooks.timeout_s)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        await self._http.aclose()

    async def _run(self) -> None:
        while True:
            try:
                for record in await self._rules.all():
                    await self.check(record, time.time())
            except (HistoryUnavailable, RecordKeptChanging) as exc:
                log.warning("alerts not checked this time (%s)", exc)
            except Exception:
                log.exception("checking alerts failed")
            await asyncio.sleep(self._check_s)

    async def _count(self, record: AlertRecord, statuses: list[str], now: float) -> int:
        rule = record.rule
        page = await self._history.search(JobFilter(statuses=statuses, types=[rule.type] if rule.type else [],
                                                    finished_after=now - rule.window_s), before=None, limit=COUNTED)
        return len(page.jobs)

    async def check(self, record: AlertRecord, now: float) -> None:
        rule = record.rule
        failures = await self._count(record, FAILED, now)
        ended = await self._count(record, sorted(TERMINAL_STATUSES), now) if rule.min_rate is not None else failures
        holds = failures >= rule.min_failures and (rule.min_rate is None or failures >= rule.min_rate * max(ended, 1))
        send: str | None = None
        retry = False

        def judged(current: AlertRecord | None) -> AlertRecord | None:
            nonlocal send, retry
            send, retry = None, False
            if current is None or current.updated_at != record.updated_at:
                return None  # deleted or replaced meanwhile: the next check sees the new rule
            state = msgspec.structs.replace(current.state, failures=failures, ended=ended, checked_at=now)
            if holds and not state.firing:
                state.firing, state.since, state.sent_at, send = True, now, now, "alert.firing"
            elif holds and state.sent_at is not None and now - state.sent_at >= rule.window_s:
                state.sent_at, send = now, "alert.firing"  # (a reminder: once per window while it lasts)
            elif not holds and state.firing:
                state.firing, state.sent_at, send = False, now, "alert.resolved"
            elif state.undelivered is not None and state.retry_at is not None and now >= state.retry_at:
                send, retry = state.undelivered, True  # (the same alert again, taken by this conductor)
            elif current.state.firing == state.firing and now - (current.state.checked_at or 0) < self._check_s * 5:
                return None  # nothing changed: no write (a quiet rule costs a read per check)
            if send is not None and rule.webhook_url:
                state.attempts = state.attempts + 1 if retry else 1
                state.undelivered, state.retry_at = send, now + self._check_s * 2 ** state.attempts
            return msgspec.structs.replace(current, state=state)

        written = await self._rules.records.update(record.name, judged)
        if written is None or send is None:
            return
        if not retry:
            log.warning("alert %s: %s (%d failed of %d ended in %.0fs)", record.name,
                        "firing" if send == "alert.firing" else "resolved", failures, ended, rule.window_s)
        if rule.webhook_url:
            error = await self._deliver(written, send)
            tried = written.state.attempts

            def noted(current: AlertRecord | None) -> AlertRecord | None:
                if current is None or current.state.undelivered != send or current.state.attempts != tried:
                    return None  # (a newer alert or try meanwhile)
                state = msgspec.structs.replace(current.state, last_error=error if error is not None else
                                                current.state.last_error)
                if error is None or tried >= ALERT_DELIVERY_ATTEMPTS:
                    state.undelivered = state.retry_at = None  # delivered, or given up
                return msgspec.structs.replace(current, state=state)

            await self._rules.records.update(record.name, noted)

    async def _deliver(self, record: AlertRecord, kind: str) -> str | None:
        """POST the alert (Standard Webhooks, signed as job webhooks are); why it failed, if it did."""
        url = record.rule.webhook_url
        assert url is not None
        body = encoder.encode({"type": kind, "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "data": {"name": record.name, "rule": record.rule, "state": record.state}})
        msg_id = f"alert_{record.name}_{int((record.state.since or 0) * 1000)}_{int((record.state.sent_at or 0) * 1000)}"
        timestamp = int(time.time())
        try:
            await check_target(url, self._webhooks.allow)
            response = await self._http.post(url, content=body, headers={
                "content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(timestamp),
                "webhook-signature": sign(self._webhooks.secrets, msg_id, timestamp, body),
                "user-agent": "jobline-alerts/1"})
        except WebhookTargetRefused as exc:
            return f"refused: {exc}"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
