"""Settings: defaults, then a TOML file, then ``CLICKTHRU_*`` environment variables,
then command-line options; each later source wins."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from clickthru.errors import ConfigError

ENV_PREFIX = "CLICKTHRU_"
DEFAULT_CONFIG_FILE = "clickthru.toml"


Positive = Annotated[int, msgspec.Meta(ge=1)]


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8787
    store: str = "clickthru.db"  # a SQLite path, or sqlite:///path
    workers: Positive = 1
    # Use X-Forwarded-For for the visitor key; only behind a proxy you run.
    trust_forwarded_for: bool = False
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 64 * 1024
    max_batch_events: Positive = 500
    # Seconds a request may take to arrive whole (head and body), from its first byte or
    # from the connection opening; slower ones get 408 (slowloris).
    request_timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    # Open connections per worker; past it the one waiting longest without a request in
    # progress is closed. Bounded by the open files the system allows.
    max_connections: Positive = 10_000
    # Upper bound of events in one group commit.
    commit_max_rows: Positive = 5000
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    # Mark the dashboard's session cookie Secure: set it when TLS is in front.
    secure_cookies: bool = False
    # With a shared PostgreSQL store (store = "postgresql://..."): this collector's spool,
    # its name in the shared store (default: the host name), and when the spool is full.
    spool: str = "clickthru-spool.db"
    collector_name: str = ""
    spool_max_events: Positive = 5_000_000
    # Count events into the report counters in this process (one process per database
    # counts; the others stand by). Off: another process (`clickthru aggregate`) counts.
    aggregate: bool = True
    # /healthz answers 503 when the store's disk has less free space than this.
    min_free_disk_mb: Annotated[int, msgspec.Meta(ge=0)] = 100
    # An order goes to the last recommended click at most this many days before it.
    attribution_days: Annotated[int, msgspec.Meta(ge=1, le=90)] = 7


def load_settings(
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = config_file or (
        Path(env[ENV_PREFIX + "CONFIG"]) if ENV_PREFIX + "CONFIG" in env else None
    )
    if path is None and Path(DEFAULT_CONFIG_FILE).is_file():
        path = Path(DEFAULT_CONFIG_FILE)
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"no settings file at {path}")
        try:
            values.update(msgspec.toml.decode(path.read_bytes()))
        except (OSError, msgspec.DecodeError) as error:
            raise ConfigError(f"cannot read {path}: {error}") from error
    fields = set(Settings.__struct_fields__)
    for name, value in env.items():
        if name.startswith(ENV_PREFIX) and name[len(ENV_PREFIX) :].lower() in fields:
            values[name[len(ENV_PREFIX) :].lower()] = value
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        # strict=False: environment values are strings ("8787", "true").
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as error:
        raise ConfigError(f"bad setting: {error}") from error
