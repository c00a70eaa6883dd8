"""History service settings: every environment variable it reads, with its default
(docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jobline.contract.names import Names
from jobline.contract.streams import RetentionSettings
from jobline.runtime import env

from .database import default_url


@dataclass(frozen=True)
class HistorySettings:
    nats_servers: list[str] = field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    nats_credentials: env.NatsCredentials = field(default_factory=env.NatsCredentials)
    names: Names = field(default_factory=Names)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    data_dir: Path = field(default_factory=lambda: Path(".jobline").resolve())
    database_url: str = ""  # empty: SQLite at <data_dir>/history.sqlite3
    batch_size: int = 2000  # job stream messages written per transaction at most
    gather_s: float = 0.01  # a batch short of batch_size waits this long for more (docs/benchmarks.md: the cost it saves)
    ack_wait_s: float = 60.0  # unacknowledged this long: redelivered (and skipped, being applied)
    max_age_s: float = 90 * 86400.0  # jobs that ended longer ago than this are pruned (0: never)
    prune_interval_s: float = 3600.0
    readers: int = 4  # threads (each with its own connection) answering queries
    state_cache: int = 20_000  # job states of running jobs kept in memory by the writer
    min_seq_wait_s: float = 2.0  # how long a query waits for the store to catch up with its min_seq
    ops_host: str = "127.0.0.1"
    ops_port: int = 9103  # /metrics, /healthz, /readyz (a free port if taken)
    log_level: str = "INFO"

    @property
    def database(self) -> str:
        return self.database_url or default_url(self.data_dir)

    @classmethod
    def from_env(cls) -> HistorySettings:
        d = cls()
        return cls(
            nats_servers=env.nats_servers(),
            nats_credentials=env.nats_credentials(),
            names=env.names(),
            retention=env.retention(),
            data_dir=env.data_dir(),
            database_url=env.env_str("JOBLINE_DATABASE_URL", d.database_url),
            batch_size=env.env_int("JOBLINE_HISTORY_BATCH", d.batch_size),
            gather_s=env.env_float("JOBLINE_HISTORY_GATHER_MS", d.gather_s * 1000) / 1000,
            ack_wait_s=env.env_float("JOBLINE_HISTORY_ACK_WAIT_S", d.ack_wait_s),
            max_age_s=env.env_float("JOBLINE_HISTORY_MAX_AGE_S", d.max_age_s),
            prune_interval_s=env.env_float("JOBLINE_HISTORY_PRUNE_INTERVAL_S", d.prune_interval_s),
            readers=env.env_int("JOBLINE_HISTORY_READERS", d.readers),
            state_cache=env.env_int("JOBLINE_HISTORY_STATE_CACHE", d.state_cache),
            min_seq_wait_s=env.env_float("JOBLINE_HISTORY_MIN_SEQ_WAIT_S", d.min_seq_wait_s),
            ops_host=env.env_str("JOBLINE_OPS_HOST", d.ops_host),
            ops_port=env.env_int("JOBLINE_OPS_PORT", d.ops_port),
            log_level=env.log_level(),
        )
