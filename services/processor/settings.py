"""Processor settings: every environment variable it reads, with its default (docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jobline.contract.names import Names
from jobline.contract.streams import RetentionSettings
from jobline.runtime import env


@dataclass(frozen=True)
class ProcessorSettings:
    nats_servers: list[str] = field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    nats_credentials: env.NatsCredentials = field(default_factory=env.NatsCredentials)
    names: Names = field(default_factory=Names)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    data_dir: Path = field(default_factory=lambda: Path(".jobline").resolve())
    job_types: tuple[str, ...] = ()  # served types; empty = every registered type
    task_modules: tuple[str, ...] = ()  # user modules that register job types on import
    concurrency: int = 16  # jobs run at once by this process
    ack_wait_s: float = 30.0  # a job unacknowledged this long is redelivered (worker presumed dead)
    max_attempts: int = 3  # default attempts per job (a job or its type may say otherwise)
    retry_backoff_s: float = 1.0  # first retry delay; doubles per attempt, with jitter
    max_backoff_s: float = 300.0
    default_timeout_s: float = 300.0  # run time limit when neither the job nor its type sets one
    max_timeout_s: float = 86400.0  # no job runs longer than this, whatever it asks for
    queue_timeout_s: float = 86400.0  # a job pending longer than this ends `expired` unrun
    progress_rate: float = 10.0  # progress events per second per job at most
    drain_grace_s: float = 10.0  # on SIGTERM, how long running jobs may take to finish
    priority_share_s: float = 30.0  # no priority starves: this often, the band served least recently goes first once
    worker_beat_s: float = 5.0  # how often it rewrites its entry in the workers bucket (gone after 3 missed)
    ops_host: str = "127.0.0.1"
    ops_port: int = 9101  # /metrics, /healthz, /readyz (a free port if taken)
    log_level: str = "INFO"

    @classmethod
    def from_env(cls) -> ProcessorSettings:
        d = cls()
        return cls(
            nats_servers=env.nats_servers(),
            nats_credentials=env.nats_credentials(),
            names=env.names(),
            retention=env.retention(),
            data_dir=env.data_dir(),
            job_types=env.env_list("JOBLINE_PROCESSOR_TYPES"),
            task_modules=env.env_list("JOBLINE_TASK_MODULES"),
            concurrency=env.env_int("JOBLINE_PROCESSOR_CONCURRENCY", d.concurrency),
            ack_wait_s=env.env_float("JOBLINE_ACK_WAIT_S", d.ack_wait_s),
            max_attempts=env.env_int("JOBLINE_MAX_ATTEMPTS", d.max_attempts),
            retry_backoff_s=env.env_float("JOBLINE_RETRY_BACKOFF_S", d.retry_backoff_s),
            max_backoff_s=env.env_float("JOBLINE_MAX_BACKOFF_S", d.max_backoff_s),
            default_timeout_s=env.env_float("JOBLINE_TIMEOUT_S", d.default_timeout_s),
            max_timeout_s=env.env_float("JOBLINE_MAX_TIMEOUT_S", d.max_timeout_s),
            queue_timeout_s=env.env_float("JOBLINE_QUEUE_TIMEOUT_S", d.queue_timeout_s),
            progress_rate=env.env_float("JOBLINE_PROGRESS_RATE", d.progress_rate),
            drain_grace_s=env.env_float("JOBLINE_DRAIN_GRACE_S", d.drain_grace_s),
            priority_share_s=env.env_float("JOBLINE_PRIORITY_SHARE_S", d.priority_share_s),
            worker_beat_s=env.env_float("JOBLINE_WORKER_BEAT_S", d.worker_beat_s),
            ops_host=env.env_str("JOBLINE_OPS_HOST", d.ops_host),
            ops_port=env.env_int("JOBLINE_OPS_PORT", d.ops_port),
            log_level=env.log_level(),
        )
