"""Logsink settings: every environment variable it reads, with its default (docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jobline.contract.names import Names
from jobline.contract.streams import RetentionSettings
from jobline.runtime import env


@dataclass(frozen=True)
class LogsinkSettings:
    nats_servers: list[str] = field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    nats_credentials: env.NatsCredentials = field(default_factory=env.NatsCredentials)
    names: Names = field(default_factory=Names)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    data_dir: Path = field(default_factory=lambda: Path(".jobline").resolve())
    db_path: Path | None = None  # default: <data_dir>/logs.sqlite3
    batch_size: int = 500  # log messages fetched and written per transaction
    gather_s: float = 0.01  # a batch short of batch_size waits this long for more (as the history service's)
    ack_wait_s: float = 30.0
    ops_host: str = "127.0.0.1"
    ops_port: int = 9102  # /metrics, /healthz, /readyz (a free port if taken)
    log_level: str = "INFO"

    @property
    def database(self) -> Path:
        return self.db_path or self.data_dir / "logs.sqlite3"

    @classmethod
    def from_env(cls) -> LogsinkSettings:
        d = cls()
        db = env.env_str("JOBLINE_LOGSINK_DB", "")
        return cls(
            nats_servers=env.nats_servers(),
            nats_credentials=env.nats_credentials(),
            names=env.names(),
            retention=env.retention(),
            data_dir=env.data_dir(),
            db_path=Path(db).resolve() if db else None,
            batch_size=env.env_int("JOBLINE_LOGSINK_BATCH", d.batch_size),
            gather_s=env.env_float("JOBLINE_LOGSINK_GATHER_MS", d.gather_s * 1000) / 1000,
            ack_wait_s=env.env_float("JOBLINE_LOGSINK_ACK_WAIT_S", d.ack_wait_s),
            ops_host=env.env_str("JOBLINE_OPS_HOST", d.ops_host),
            ops_port=env.env_int("JOBLINE_OPS_PORT", d.ops_port),
            log_level=env.log_level(),
        )
