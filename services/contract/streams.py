"""Stream configurations: what each service ensures exists when it starts."""

from __future__ import annotations

from dataclasses import dataclass

from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamSource,
)

from .names import Names

DUPLICATE_WINDOW_S = 120.0


@dataclass(frozen=True)
class RetentionSettings:
    """Retention and replication of the streams (1 replica locally, 3 on a cluster)."""

    replicas: int = 1
    jobs_max_age_s: float = 7 * 24 * 3600
    jobs_max_bytes: int = 1 << 30
    logs_max_age_s: float = 3 * 24 * 3600
    logs_max_bytes: int = 1 << 30
    duplicate_window_s: float = DUPLICATE_WINDOW_S  # a retried publish within this is stored once


def jobs_stream_config(names: Names, retention: RetentionSettings) -> StreamConfig:
    return StreamConfig(
        name=names.jobs_stream,
        description="Every job's timeline: created, started, steps, progress, log lines, end.",
        subjects=[names.all_job_events, names.all_schedules],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=retention.jobs_max_age_s,
        max_bytes=retention.jobs_max_bytes,
        num_replicas=retention.replicas,
        duplicate_window=min(retention.duplicate_window_s, retention.jobs_max_age_s),
        allow_direct=True,
        allow_msg_schedules=True,  # delayed jobs: the broker publishes their created events on time
        allow_atomic=True,  # batches and flows: all their jobs are stored, or none (runtime/atomic_publish.py)
    )


def logs_stream_config(names: Names, retention: RetentionSettings) -> StreamConfig:
    # Job log lines are published once, into the job's timeline; the log stream sources them from
    # there so the logsink reads one stream holding both job lines and the services' own records.
    return StreamConfig(
        name=names.logs_stream,
        description="Job log lines (sourced from the job stream) and the services' own log records.",
        subjects=[names.all_service_logs],
        sources=[StreamSource(name=names.jobs_stream, filter_subject=names.all_job_logs)],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=retention.logs_max_age_s,
        max_bytes=retention.logs_max_bytes,
        num_replicas=retention.replicas,
        duplicate_window=min(retention.duplicate_window_s, retention.logs_max_age_s),
        allow_direct=True,
    )


def schedules_stream_config(names: Names, replicas: int) -> StreamConfig:
    """Recurring schedules' wake-ups (gateway/schedules.py): no age limit, since the next wake-up of
    a yearly schedule waits a year; a few messages per subject (one armed wake-up, its due copy)."""
    return StreamConfig(
        name=names.schedules_stream,
        description="Recurring schedules: the broker-held wake-up of each schedule's next tick.",
        subjects=[names.all_schedule_subjects],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_msgs_per_subject=4,
        num_replicas=replicas,
        duplicate_window=DUPLICATE_WINDOW_S,
        allow_direct=True,
        allow_msg_schedules=True,
    )


def schedules_bucket_config(names: Names, replicas: int) -> KeyValueConfig:
    """Recurring schedules' definitions and what each last did, by name (kept until deleted)."""
    return KeyValueConfig(bucket=names.schedules_bucket, history=1, storage=StorageType.FILE, replicas=replicas)


def _kept_as_long_as_jobs(name: str, description: str, subjects: list[str], retention: RetentionSettings,
                          policy: RetentionPolicy = RetentionPolicy.LIMITS) -> StreamConfig:
    """A stream of work about jobs for the conductors, kept as long as the jobs it is about."""
    return StreamConfig(
        name=name,
        description=description,
        subjects=subjects,
        retention=policy,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=retention.jobs_max_age_s,
        num_replicas=retention.replicas,
        duplicate_window=min(retention.duplicate_window_s, retention.jobs_max_age_s),
    )


def flows_stream_config(names: Names, retention: RetentionSettings) -> StreamConfig:
    """Flow signals (contract/flows.py)."""
    return _kept_as_long_as_jobs(
        names.flows_stream,
        "Flow signals: a job of a flow ended (the conductors' flow runner releases what waited for it).",
        [names.all_flow_signals], retention)


def webhooks_stream_config(names: Names, retention: RetentionSettings) -> StreamConfig:
    """Webhooks due (contract/webhooks.py)."""
    return _kept_as_long_as_jobs(
        names.webhooks_stream, "Webhooks due: a job that asked for one ended (the conductors send it).",
        [names.all_webhooks_due], retention)


def operations_stream_config(names: Names, retention: RetentionSettings) -> StreamConfig:
    """Bulk operations to run (contract/operations.py): a work queue, an operation's message leaves
    once a conductor has run it to its end."""
    return _kept_as_long_as_jobs(
        names.operations_stream,
        "Bulk actions to run (cancel or delete every job a filter matches): the conductors take them.",
        [names.all_operations], retention, RetentionPolicy.WORK_QUEUE)


def all_stream_configs(names: Names, retention: RetentionSettings) -> list[StreamConfig]:
    # Order matters: the log stream sources from the job stream.
    return [jobs_stream_config(names, retention), logs_stream_config(names, retention),
            flows_stream_config(names, retention), webhooks_stream_config(names, retention),
            operations_stream_config(names, retention)]


def types_bucket_config(names: Names, replicas: int) -> KeyValueConfig:
    """The job types KV bucket: processors advertise what they serve, gateways watch it."""
    return KeyValueConfig(bucket=names.types_bucket, history=1, storage=StorageType.FILE, replicas=replicas)
