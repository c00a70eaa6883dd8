"""Gateway settings: every environment variable it reads, with its default (docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jobline.contract.names import Names
from jobline.contract.streams import RetentionSettings
from jobline.runtime import env


def default_web_dir() -> Path:
    """`web/` beside the `services/` source folder (a checkout or an editable install)."""
    return Path(__file__).resolve().parents[2] / "web"


@dataclass(frozen=True)
class GatewaySettings:
    nats_servers: list[str] = field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    nats_credentials: env.NatsCredentials = field(default_factory=env.NatsCredentials)
    names: Names = field(default_factory=Names)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    host: str = "127.0.0.1"  # loopback by default: there is no authentication yet
    port: int = 8000
    web_dir: Path = field(default_factory=default_web_dir)
    heartbeat_s: float = 15.0  # SSE comment sent when a stream has been quiet this long
    sse_retry_ms: int = 2000  # reconnection delay suggested to EventSource clients
    stream_buffer: int = 1000  # frames buffered per SSE client before it is dropped as too slow
    shutdown_timeout_s: float = 10.0  # on SIGTERM, at most this long before open connections are cut
    sse_send_timeout_s: float = 30.0  # a stream client that takes nothing this long is cut off
    snapshot_log_lines: int = 500  # recent log lines sent with an SSE snapshot (older: /logs)
    catch_up_timeout_s: float = 5.0  # how long a lookup of an unseen job id waits for the read model
    recent_jobs: int = 1000  # ended jobs kept in memory for the dashboard (older ones: the history service)
    history_timeout_s: float = 5.0  # a history query that takes longer answers 503
    history_start_wait_s: float = 5.0  # at start, how long to wait for a history service before reading the stream
    max_timeout_s: float = 86400.0  # the largest timeout_s / queue_timeout_s a submission may ask for
    max_attempts: int = 100  # the largest max_attempts a submission may ask for
    max_delay_s: float = 366 * 86400.0  # how far ahead run_at / delay_s may put a job
    max_wait_s: float = 60.0  # the longest long-poll GET /api/jobs/{id}?wait= may ask for
    idempotency_ttl_s: float = 86400.0  # how long an Idempotency-Key keeps pointing at its job
    max_upload_bytes: int = 2 << 30  # POST /api/uploads limit (413 beyond)
    upload_idle_timeout_s: float = 30.0  # an upload whose client sends nothing this long gets 408
    api_tokens: tuple[str, ...] = ()  # none: no authentication (and loopback by default)
    form_token_ttl_s: float = 3600.0  # how long a token from POST /api/form-tokens lets a form submit
    cors_origins: tuple[str, ...] = ()  # origins allowed to call the API from a browser (never "*")
    allowed_hosts: tuple[str, ...] = ()  # Host names answered besides loopback and JOBLINE_HOST ("*": any)
    max_streams_per_client: int = 100  # concurrent live streams per token or address (429 beyond)
    submit_rate: float = 0.0  # job creations per second per token or address (0: no limit)
    # Webhooks are sent by the conductor (its settings); the gateway refuses a webhook_url at submit
    # when there is no secret to sign with, or when its target may not be called.
    webhook_secrets: tuple[str, ...] = ()  # signing secrets (two during a rotation); none: webhooks off
    webhook_allow: tuple[str, ...] = ()  # hosts or CIDRs admitted although private (e.g. 10.0.0.0/8)
    schedule_catchup_s: float = 3600.0  # (shown in a schedule's view: the conductor runs its ticks)
    log_level: str = "INFO"

    @property
    def effective_max_delay_s(self) -> float:
        """A delayed job's schedule lives in the job stream: it must not age out before it fires."""
        keep = self.retention.jobs_max_age_s
        return min(self.max_delay_s, max(keep - 3600.0, keep / 2)) if keep > 0 else self.max_delay_s

    @classmethod
    def from_env(cls) -> GatewaySettings:
        d = cls()
        web = env.env_str("JOBLINE_WEB_DIR", "")
        return cls(
            nats_servers=env.nats_servers(),
            nats_credentials=env.nats_credentials(),
            names=env.names(),
            retention=env.retention(),
            host=env.env_str("JOBLINE_HOST", d.host),
            port=env.env_int("JOBLINE_PORT", d.port),
            web_dir=Path(web).resolve() if web else d.web_dir,
            heartbeat_s=env.env_float("JOBLINE_SSE_HEARTBEAT_S", d.heartbeat_s),
            sse_retry_ms=env.env_int("JOBLINE_SSE_RETRY_MS", d.sse_retry_ms),
            stream_buffer=env.env_int("JOBLINE_SSE_BUFFER", d.stream_buffer),
            snapshot_log_lines=env.env_int("JOBLINE_SNAPSHOT_LOG_LINES", d.snapshot_log_lines),
            sse_send_timeout_s=env.env_float("JOBLINE_SSE_SEND_TIMEOUT_S", d.sse_send_timeout_s),
            shutdown_timeout_s=env.env_float("JOBLINE_SHUTDOWN_TIMEOUT_S", d.shutdown_timeout_s),
            catch_up_timeout_s=env.env_float("JOBLINE_CATCH_UP_TIMEOUT_S", d.catch_up_timeout_s),
            recent_jobs=env.env_int("JOBLINE_RECENT_JOBS", d.recent_jobs),
            history_timeout_s=env.env_float("JOBLINE_HISTORY_TIMEOUT_S", d.history_timeout_s),
            history_start_wait_s=env.env_float("JOBLINE_HISTORY_START_WAIT_S", d.history_start_wait_s),
            max_timeout_s=env.env_float("JOBLINE_MAX_TIMEOUT_S", d.max_timeout_s),
            max_attempts=env.env_int("JOBLINE_MAX_ATTEMPTS_LIMIT", d.max_attempts),
            max_delay_s=env.env_float("JOBLINE_MAX_DELAY_S", d.max_delay_s),
            max_wait_s=env.env_float("JOBLINE_MAX_WAIT_S", d.max_wait_s),
            schedule_catchup_s=env.env_float("JOBLINE_SCHEDULE_CATCHUP_S", d.schedule_catchup_s),
            idempotency_ttl_s=env.env_float("JOBLINE_IDEMPOTENCY_TTL_S", d.idempotency_ttl_s),
            max_upload_bytes=env.env_int("JOBLINE_MAX_UPLOAD_BYTES", d.max_upload_bytes),
            upload_idle_timeout_s=env.env_float("JOBLINE_UPLOAD_IDLE_TIMEOUT_S", d.upload_idle_timeout_s),
            api_tokens=env.env_list("JOBLINE_API_TOKENS"),
            form_token_ttl_s=env.env_float("JOBLINE_FORM_TOKEN_TTL_S", d.form_token_ttl_s),
            cors_origins=env.env_list("JOBLINE_CORS_ORIGINS"),
            allowed_hosts=env.env_list("JOBLINE_ALLOWED_HOSTS"),
            max_streams_per_client=env.env_int("JOBLINE_MAX_STREAMS_PER_CLIENT", d.max_streams_per_client),
            submit_rate=env.env_float("JOBLINE_SUBMIT_RATE", d.submit_rate),
            webhook_secrets=env.env_list("JOBLINE_WEBHOOK_SECRETS"),
            webhook_allow=env.env_list("JOBLINE_WEBHOOK_ALLOW"),
            log_level=env.log_level(),
        )
