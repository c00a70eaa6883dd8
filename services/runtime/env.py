"""Typed readers for environment variables; each service's settings module is the only caller."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from jobline.contract.names import Names
from jobline.contract.streams import RetentionSettings


class SettingsError(ValueError):
    pass


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default).strip() or default


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


def env_list(name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    raw = os.environ.get(name, "")
    items = tuple(part.strip() for part in raw.split(",") if part.strip())
    return items or default


# The settings every service reads the same way (documented in docs/configuration.md).
def nats_servers() -> list[str]:
    """NATS_URL may list several servers of a cluster, comma separated."""
    return list(env_list("NATS_URL", ("nats://127.0.0.1:4222",)))


@dataclass(frozen=True)
class NatsCredentials:
    """How a service proves who it is to NATS (each service its own user in a secured deployment;
    deploy/nats/auth.conf) and which CA it trusts for `tls://` servers."""

    user: str | None = None
    password: str | None = None
    creds_file: str | None = None  # a NATS .creds file (JWT + nkey), for operator-mode clusters
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None  # client certificate, when the server verifies clients
    tls_key_file: str | None = None


def nats_credentials() -> NatsCredentials:
    def optional(name: str) -> str | None:
        return os.environ.get(name, "").strip() or None

    cert, key = optional("NATS_TLS_CERT_FILE"), optional("NATS_TLS_KEY_FILE")
    if bool(cert) != bool(key):
        raise SettingsError("NATS_TLS_CERT_FILE and NATS_TLS_KEY_FILE must be set together")
    return NatsCredentials(user=optional("NATS_USER"), password=optional("NATS_PASSWORD"),
                           creds_file=optional("NATS_CREDS_FILE"), tls_ca_file=optional("NATS_TLS_CA_FILE"),
                           tls_cert_file=cert, tls_key_file=key)


def names() -> Names:
    return Names(env_str("JOBLINE_NAMESPACE", ""))


def data_dir() -> Path:
    return Path(env_str("JOBLINE_DATA_DIR", ".jobline")).resolve()


def retention() -> RetentionSettings:
    defaults = RetentionSettings()
    return RetentionSettings(
        replicas=env_int("JOBLINE_STREAM_REPLICAS", defaults.replicas),
        jobs_max_age_s=env_float("JOBLINE_JOBS_MAX_AGE_S", defaults.jobs_max_age_s),
        jobs_max_bytes=env_int("JOBLINE_JOBS_MAX_BYTES", defaults.jobs_max_bytes),
        logs_max_age_s=env_float("JOBLINE_LOGS_MAX_AGE_S", defaults.logs_max_age_s),
        logs_max_bytes=env_int("JOBLINE_LOGS_MAX_BYTES", defaults.logs_max_bytes),
        duplicate_window_s=env_float("JOBLINE_DUPLICATE_WINDOW_S", defaults.duplicate_window_s),
    )


def log_level() -> str:
    return env_str("JOBLINE_LOG_LEVEL", "INFO").upper()
