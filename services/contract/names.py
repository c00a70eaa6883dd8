"""Every subject, stream, consumer and bucket name Jobline uses, in one place.

A `Names` value is built from an optional namespace so that several Jobline installations (or
several tests) can share one NATS server without seeing each other's subjects.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .name_rules import ALL_PRIORITIES as ALL_PRIORITIES
from .name_rules import JOB_ID_PATTERN as JOB_ID_PATTERN
from .name_rules import JOB_TYPE_PATTERN as JOB_TYPE_PATTERN
from .name_rules import (
    NAMESPACE_RE,
    QUEUE_DURABLE_RE,
    checked_job_id,
    checked_job_type,
    checked_lane,
    checked_priority,
    checked_schedule_name,
)
from .name_rules import OWNER_LANES as OWNER_LANES
from .name_rules import PRIORITY_BANDS as PRIORITY_BANDS
from .name_rules import PRIORITY_MAX as PRIORITY_MAX
from .name_rules import PRIORITY_MIN as PRIORITY_MIN
from .name_rules import SCHEDULE_NAME_PATTERN as SCHEDULE_NAME_PATTERN
from .name_rules import SERVICE_NAME_RE as SERVICE_NAME_RE
from .name_rules import SIGNAL_NAME_PATTERN as SIGNAL_NAME_PATTERN
from .name_rules import InvalidName as InvalidName
from .name_rules import checked_signal_name as checked_signal_name
from .name_rules import is_valid_job_id as is_valid_job_id
from .name_rules import is_valid_job_type as is_valid_job_type
from .name_rules import is_valid_schedule_name as is_valid_schedule_name
from .name_rules import owner_lane as owner_lane

# The tokens after `jobs.<id>.` of each job event subject.
SCHEDULED = "scheduled"
BLOCKED = "blocked"
CREATED = "created"
WAITING = "waiting"
STEP = "step"
PROGRESS = "progress"
LOG = "log"
CANCEL = "cancel"
ARTIFACT = "artifact"
WEBHOOK = "webhook"
SIGNAL = "signal"  # `jobs.<id>.signal.<name>`: the signals a job's handler waits for
DELETED = "deleted"  # an ended job deleted from history
# The run chain `jobs.<id>.run.*` holds the attempt lifecycle: started, retrying, ended. Every
# write to it is a compare-and-set on the chain's last sequence (Nats-Expected-Last-Subject-
# Sequence with Nats-Expected-Last-Subject-Sequence-Subject = `jobs.<id>.run.*`), so the broker
# keeps one terminal event per job and fences out a worker whose attempt has been superseded.
RUN = "run"
STARTED = "started"
RETRYING = "retrying"
SUSPENDED = "suspended"
AWAITING = "awaiting"  # (awaiting a signal)
ENDED = "ended"

# The history service's request/reply endpoints (contract/history.py has their messages).
HISTORY_ENDPOINTS = ("window", "job", "search", "events", "counts", "activity", "status")


@dataclass(frozen=True)
class _Namespaced:
    namespace: str = ""

    def __post_init__(self) -> None:
        if not NAMESPACE_RE.fullmatch(self.namespace):
            raise InvalidName(f"invalid namespace {self.namespace!r}")

    def _subject(self, *tokens: str) -> str:
        return ".".join(((self.namespace,) if self.namespace else ()) + tokens)

    def _stream(self, base: str) -> str:
        return f"{self.namespace.upper().replace('-', '_')}_{base}" if self.namespace else base


class _Bucket:
    """A KV bucket's or an object store's name under the namespace (read through `Names`)."""

    def __init__(self, base: str, doc: str):
        self.base, self.__doc__ = base, doc

    def __get__(self, names: _Namespaced | None, owner: type | None = None) -> str:
        return self.base.lower() if names is None else names._stream(self.base).lower()


class _StoreNames(_Namespaced):
    """The KV buckets, object stores and request/reply services (apart from the streams and
    subjects below only to keep each class readable: use them through `Names`)."""

    types_bucket = _Bucket("JOB_TYPES", "KV bucket where processors advertise the job types they serve.")
    queue_controls_bucket = _Bucket(
        "QUEUE_CONTROLS", "KV bucket: job type → its queue controls (paused, concurrency, rate limit).")
    flows_bucket = _Bucket("FLOWS", "KV bucket: flow id (its root job's id) → the flow's record (gateway/flows.py).")
    batches_bucket = _Bucket("BATCHES", "KV bucket: batch id → its record (when, which jobs: gateway/batches.py).")
    key_slots_bucket = _Bucket(
        "KEY_SLOTS", "KV bucket of per-key concurrency slots: `<type>.<key hash>.<n>` → its holder, expiring unless "
        "renewed (a killed holder's slot comes back).")
    schedules_bucket = _Bucket(
        "SCHEDULES", "KV bucket: schedule name → its definition and what it last did (gateway/schedules.py).")
    uploads_bucket = _Bucket("UPLOADS", "Object store of uploaded job inputs.")
    artifacts_bucket = _Bucket("ARTIFACTS", "Object store of job results (`<job id>/<name>`).")
    idempotency_bucket = _Bucket("IDEMPOTENCY", "KV bucket: Idempotency-Key (hashed) → job id.")
    workers_bucket = _Bucket(
        "WORKERS", "KV bucket: worker id → what that processor last said of itself (contract/workers.py).")
    alerts_bucket = _Bucket("ALERTS", "KV bucket: alert name → its rule and whether it fires (contract/alerts.py).")
    operations_bucket = _Bucket(
        "OPERATIONS", "KV bucket: operation id → a bulk action's record and progress (contract/operations.py).")
    unique_bucket = _Bucket(
        "UNIQUE_KEYS", "KV bucket: `<type>.<unique_key hashed>` → the job that holds the key (jobs/unique.py).")

    def worker_rpc(self, worker_id: str, action: str = "*") -> str:
        """`rpc.workers.<id>.<action>`: what one processor answers (drain, resume)."""
        return self._subject("rpc", "workers", worker_id, action)

    @property
    def log_history_rpc(self) -> str:
        """Request/reply subject of the logsink; outside the streams' `jobs.>`/`logs.>` space."""
        return self._subject("rpc", "logsink", "history")

    def history_rpc(self, endpoint: str) -> str:
        """`rpc.history.<endpoint>`: the history service's endpoints (a `nats.micro` service);
        outside the streams' subjects, like the logsink's."""
        if endpoint not in HISTORY_ENDPOINTS:
            raise InvalidName(f"unknown history endpoint {endpoint!r}")
        return self._subject("rpc", "history", endpoint)

    @property
    def history_service(self) -> str:
        """The micro service's name (`nats micro ls` shows it; several namespaces share it)."""
        return "jobline-history"


class Names(_StoreNames):
    """Every subject, stream, durable, bucket and service name, under an optional namespace."""

    # --- streams --------------------------------------------------------------------------
    @property
    def jobs_stream(self) -> str:
        return self._stream("JOBS")

    @property
    def logs_stream(self) -> str:
        return self._stream("LOGS")

    @property
    def all_job_events(self) -> str:
        """Filter for every job's every event: `jobs.>`."""
        return self._subject("jobs", ">")

    @property
    def all_service_logs(self) -> str:
        """Filter for the services' own log records: `logs.>`."""
        return self._subject("logs", ">")

    @property
    def all_schedules(self) -> str:
        """`scheduler.>`: the broker-held message schedules of delayed jobs. In the job stream (a
        schedule's target must be in its own stream) but outside `jobs.>`, so no reader of job
        events ever sees one: what they see is the created event it produces when it fires."""
        return self._subject("scheduler", ">")

    def schedule(self, job_id: str) -> str:
        """`scheduler.<id>`: the one message schedule of a delayed job (purged once it fired)."""
        return self._subject("scheduler", checked_job_id(job_id))

    def signal_timeout(self, job_id: str, name: str) -> str:
        """`scheduler.<id>.signal.<name>`: the message schedule that ends a job's wait for a signal
        (its target: the signal's own subject)."""
        return self._subject("scheduler", checked_job_id(job_id), SIGNAL, checked_signal_name(name))

    @property
    def schedules_stream(self) -> str:
        """Recurring schedules' wake-ups: kept without an age limit (a yearly schedule's next
        wake-up must outlive the job stream's retention)."""
        return self._stream("SCHEDULES")

    @property
    def all_schedule_subjects(self) -> str:
        return self._subject("schedules", ">")

    def schedule_wake(self, name: str) -> str:
        """`schedules.<name>.wake`: the broker-held `@at` message schedule of the next tick."""
        return self._subject("schedules", checked_schedule_name(name), "wake")

    def schedule_due(self, name: str) -> str:
        """`schedules.<name>.due`: where the broker publishes the wake-up when its time comes."""
        return self._subject("schedules", checked_schedule_name(name), "due")

    @property
    def all_schedules_due(self) -> str:
        return self._subject("schedules", "*", "due")

    @property
    def schedule_ticks_durable(self) -> str:
        """The conductors' shared durable on `schedules.*.due`: each wake-up goes to one conductor."""
        return "schedule-ticks"

    @property
    def all_job_ends(self) -> str:
        """Filter for every job's terminal event: `jobs.*.run.ended`."""
        return self._subject("jobs", "*", RUN, ENDED)

    @property
    def all_signals(self) -> str:
        """Every job's signals: `jobs.*.signal.*`."""
        return self._subject("jobs", "*", SIGNAL, "*")

    @property
    def all_signal_waits(self) -> str:
        """Every job's waits for a signal: `jobs.*.run.awaiting`."""
        return self._subject("jobs", "*", RUN, AWAITING)

    @property
    def signal_runner_durable(self) -> str:
        """The conductors' shared durable on `jobs.*.signal.*` and `jobs.*.run.awaiting`: a job resumed once."""
        return "signal-runner"

    @property
    def all_cancel_requests(self) -> str:
        return self._subject("jobs", "*", CANCEL)

    @property
    def all_job_logs(self) -> str:
        """Filter for every job's log lines (sourced from the job stream into the log stream)."""
        return self._subject("jobs", "*", LOG)

    # --- one job --------------------------------------------------------------------------
    def job_timeline(self, job_id: str) -> str:
        """One job's whole timeline is this one filter: `jobs.<id>.>`."""
        return self._subject("jobs", checked_job_id(job_id), ">")

    def job_event(self, job_id: str, kind: str) -> str:
        return self._subject("jobs", checked_job_id(job_id), kind)

    def job_signal(self, job_id: str, name: str) -> str:
        """`jobs.<id>.signal.<name>`: the signal (its first message counts), or its wait's timeout."""
        return self._subject("jobs", checked_job_id(job_id), SIGNAL, checked_signal_name(name))

    def run_event(self, job_id: str, kind: str) -> str:
        """`jobs.<id>.run.<started|retrying|ended>`."""
        return self._subject("jobs", checked_job_id(job_id), RUN, kind)

    def run_chain(self, job_id: str) -> str:
        """`jobs.<id>.run.*`: the subject set every lifecycle write is checked against."""
        return self._subject("jobs", checked_job_id(job_id), RUN, "*")

    def job_created(self, job_id: str, job_type: str, priority: int = PRIORITY_MIN, lane: int | None = None) -> str:
        """`jobs.<id>.created.<type>`; `….<type>.p<N>` for a job of priority N above the default; with an
        owner's lane, `….<type>.p<N>.l<K>` (p0 included: the default queue's filter has four tokens)."""
        return self._subject(*self._queue_tokens(job_type, priority, lane, checked_job_id(job_id)))

    def created_filter(self, job_type: str | None = None, priority: int = PRIORITY_MIN, lane: int | None = None) -> str:
        """New jobs of one queue — a priority band, or an owner lane of it — of one type (or of every type)."""
        return self._subject(*self._queue_tokens(job_type, priority, lane, "*"))

    @staticmethod
    def _queue_tokens(job_type: str | None, priority: int, lane: int | None, job_id: str) -> tuple[str, ...]:
        tokens: tuple[str, ...] = ("jobs", job_id, CREATED, "*" if job_type is None else checked_job_type(job_type))
        if lane is not None:
            return (*tokens, f"p{checked_priority(priority)}", f"l{checked_lane(lane)}")
        if checked_priority(priority) == PRIORITY_MIN:
            return tokens
        return (*tokens, f"p{priority}")

    def created_queue(self, subject: str) -> tuple[str, int, int | None]:
        """The job type, priority band and owner lane (or None) a created event's subject carries."""
        tokens = subject.split(".")[1 if self.namespace else 0:]
        if len(tokens) not in (4, 5, 6) or tokens[2] != CREATED:
            raise InvalidName(f"not a created event's subject: {subject!r}")
        if len(tokens) == 4:
            return tokens[3], PRIORITY_MIN, None
        if tokens[4][:1] != "p" or not tokens[4][1:].isdigit():
            raise InvalidName(f"not a priority band: {tokens[4]!r}")
        priority = checked_priority(int(tokens[4][1:]))
        if len(tokens) == 5:
            return tokens[3], priority, None
        if tokens[5][:1] != "l" or not tokens[5][1:].isdigit():
            raise InvalidName(f"not an owner lane: {tokens[5]!r}")
        return tokens[3], priority, checked_lane(int(tokens[5][1:]))

    @property
    def all_created(self) -> str:
        """Every new job of every type and band: `jobs.*.created.>`."""
        return self._subject("jobs", "*", CREATED, ">")

    def prioritized_created(self, job_type: str) -> str:
        """New jobs of a type in a queue other than its default one (a priority band above the default,
        an owner lane): `jobs.*.created.<type>.>`."""
        return self._subject("jobs", "*", CREATED, checked_job_type(job_type), ">")

    @property
    def submits_stream(self) -> str:
        """Owners' recent submissions, one message per job, for their submit rate across gateways
        (gateway/http/owner_rates.py)."""
        return self._stream("SUBMITS")

    def owner_submits(self, owner: str) -> str:
        """`submits.<owner hashed>`: an owner may hold any characters, a subject token may not."""
        return self._subject("submits", hashlib.blake2b(owner.encode(), digest_size=12).hexdigest())

    @property
    def all_submits(self) -> str:
        return self._subject("submits", "*")

    @property
    def webhooks_stream(self) -> str:
        """Webhooks due: one message per end of a job that asked for a webhook, for the conductors."""
        return self._stream("WEBHOOKS")

    def webhook_due(self, job_id: str) -> str:
        """`webhooks.<id>.due`: the job ended and wants its webhook sent (body: contract/webhooks.WebhookDue)."""
        return self._subject("webhooks", checked_job_id(job_id), "due")

    @property
    def all_webhooks_due(self) -> str:
        return self._subject("webhooks", "*", "due")

    @property
    def webhooks_durable(self) -> str:
        """The conductors' shared durable on `webhooks.*.due`: each delivery to one conductor."""
        return "webhooks"

    @property
    def legacy_webhooks_durable(self) -> str:
        """Before the conductor, the gateways read every job end (`jobs.*.run.ended`) for webhooks
        with this durable on the job stream; the conductor removes it."""
        return "webhooks"

    def service_log(self, service: str, level: str) -> str:
        return self._subject("logs", service, level.lower())

    # --- consumers, buckets, request/reply ----------------------------------------------------
    def queue_durable(self, job_type: str) -> str:
        """`queue-<type>`: a job type's queue, the durable consumer of `jobs.*.created.<type>` every
        processor serving the type shares. Its pause and `max_ack_pending` are the type's pause and
        cluster-wide concurrency limit (queue controls, docs/architecture.md)."""
        return f"queue-{checked_job_type(job_type)}"

    def band_durable(self, job_type: str, priority: int, lane: int | None = None) -> str:
        """The queue of a type's jobs of one priority band: `queue-<type>` for the default (0),
        `queue-<type>-P<N>` above it (upper case: no type name has it, so no type's queue is another's
        band); an owner lane of a band: `queue-<type>-P<N>-L<K>`."""
        if lane is not None:
            return f"queue-{checked_job_type(job_type)}-P{checked_priority(priority)}-L{checked_lane(lane)}"
        if checked_priority(priority) == PRIORITY_MIN:
            return self.queue_durable(job_type)
        return f"queue-{checked_job_type(job_type)}-P{priority}"

    @staticmethod
    def queue_of(durable: str, job_type: str) -> tuple[int, int | None] | None:
        """(priority, lane) of a queue of `job_type` named `durable`; None for any other consumer."""
        found = QUEUE_DURABLE_RE.fullmatch(durable)
        if found is None or found["type"] != job_type:
            return None
        priority = int(found["priority"] or PRIORITY_MIN)
        lane = int(found["lane"]) if found["lane"] is not None else None
        if lane is not None and lane >= OWNER_LANES:
            return None
        return priority, lane

    def rate_stream(self, job_type: str) -> str:
        """A rate-limited type's token window: at most N messages younger than the window, new ones
        refused (discard new), so the broker itself counts starts across every processor."""
        return self._stream(f"RATE_{checked_job_type(job_type)}")

    def rate_tokens(self, job_type: str) -> str:
        """`rates.<type>`: one message per job start of a rate-limited type."""
        return self._subject("rates", checked_job_type(job_type))

    @property
    def logsink_durable(self) -> str:
        return "logsink"

    @property
    def history_durable(self) -> str:
        """The history service's durable consumer of the job stream."""
        return "history"

    @property
    def flows_stream(self) -> str:
        """Flow signals: one message per ended job of a flow, for the conductors' flow runner."""
        return self._stream("FLOWS")

    def flow_spawn(self, flow_id: str) -> str:
        """`flows.<flow>.spawn`: a handler added children (body: contract/flows.SpawnRequest)."""
        return self._subject("flows", checked_job_id(flow_id), "spawn")

    def flow_ended(self, flow_id: str) -> str:
        """`flows.<flow>.ended`: a job of the flow ended (body: contract/flows.FlowSignal)."""
        return self._subject("flows", checked_job_id(flow_id), "ended")

    @property
    def all_flow_signals(self) -> str:
        return self._subject("flows", ">")

    @property
    def all_flows_ended(self) -> str:
        return self._subject("flows", "*", "ended")

    @property
    def operations_stream(self) -> str:
        """Bulk actions to run: one message per stored operation, for the conductors' operation runner."""
        return self._stream("OPERATIONS")

    def operation(self, operation_id: str) -> str:
        """`operations.<id>`: run this bulk action (body: contract/operations.BulkOperation as asked)."""
        return self._subject("operations", checked_job_id(operation_id))

    @property
    def all_operations(self) -> str:
        return self._subject("operations", "*")

    @property
    def operation_runner_durable(self) -> str:
        """The conductors' shared durable on `operations.*`: each operation runs on one conductor at a time."""
        return "operation-runner"

    @property
    def flow_runner_durable(self) -> str:
        """The conductors' shared durable on `flows.>`: each signal goes to one conductor."""
        return "flow-runner"
