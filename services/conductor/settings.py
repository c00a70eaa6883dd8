"""Conductor settings: every environment variable it reads, with its default (docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from jobline.contract.names import Names
from jobline.contract.streams import RetentionSettings
from jobline.jobs.checks import JobLimits
from jobline.runtime import env


@dataclass(frozen=True)
class WebhookSettings:
    secrets: tuple[str, ...] = ()  # signing secrets (two during a rotation); none: webhooks off
    allow: tuple[str, ...] = ()  # hosts or CIDRs admitted although private (e.g. 10.0.0.0/8)
    timeout_s: float = 10.0
    max_attempts: int = 8
    backoff_s: float = 5.0  # first retry delay; doubles per attempt
    max_response_bytes: int = 64 * 1024


@dataclass(frozen=True)
class ConductorSettings:
    nats_servers: list[str] = field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    nats_credentials: env.NatsCredentials = field(default_factory=env.NatsCredentials)
    names: Names = field(default_factory=Names)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    schedule_catchup_s: float = 3600.0  # a recurring schedule's ticks missed longer ago than this are skipped
    max_timeout_s: float = 86400.0  # bounds a spawned child or a schedule's job is held to (as at the gateway)
    max_attempts: int = 100
    idempotency_ttl_s: float = 86400.0
    history_timeout_s: float = 5.0
    alert_check_s: float = 15.0  # how often failure alert rules are evaluated
    ops_host: str = "127.0.0.1"
    ops_port: int = 9104  # /metrics, /healthz, /readyz (a free port if taken)
    log_level: str = "INFO"

    @property
    def job_limits(self) -> JobLimits:
        keep = self.retention.jobs_max_age_s
        return JobLimits(max_timeout_s=self.max_timeout_s, max_attempts=self.max_attempts,
                         max_delay_s=max(keep - 3600.0, keep / 2), webhook_secrets=self.webhooks.secrets,
                         webhook_allow=self.webhooks.allow)

    @classmethod
    def from_env(cls) -> ConductorSettings:
        d, w = cls(), WebhookSettings()
        return cls(
            nats_servers=env.nats_servers(),
            nats_credentials=env.nats_credentials(),
            names=env.names(),
            retention=env.retention(),
            webhooks=WebhookSettings(
                secrets=env.env_list("JOBLINE_WEBHOOK_SECRETS"),
                allow=env.env_list("JOBLINE_WEBHOOK_ALLOW"),
                timeout_s=env.env_float("JOBLINE_WEBHOOK_TIMEOUT_S", w.timeout_s),
                max_attempts=env.env_int("JOBLINE_WEBHOOK_MAX_ATTEMPTS", w.max_attempts),
                backoff_s=env.env_float("JOBLINE_WEBHOOK_BACKOFF_S", w.backoff_s),
                max_response_bytes=env.env_int("JOBLINE_WEBHOOK_MAX_RESPONSE_BYTES", w.max_response_bytes)),
            schedule_catchup_s=env.env_float("JOBLINE_SCHEDULE_CATCHUP_S", d.schedule_catchup_s),
            max_timeout_s=env.env_float("JOBLINE_MAX_TIMEOUT_S", d.max_timeout_s),
            max_attempts=env.env_int("JOBLINE_MAX_ATTEMPTS_LIMIT", d.max_attempts),
            idempotency_ttl_s=env.env_float("JOBLINE_IDEMPOTENCY_TTL_S", d.idempotency_ttl_s),
            history_timeout_s=env.env_float("JOBLINE_HISTORY_TIMEOUT_S", d.history_timeout_s),
            alert_check_s=env.env_float("JOBLINE_ALERT_CHECK_S", d.alert_check_s),
            ops_host=env.env_str("JOBLINE_OPS_HOST", d.ops_host),
            ops_port=env.env_int("JOBLINE_OPS_PORT", d.ops_port),
            log_level=env.log_level(),
        )
