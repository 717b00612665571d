"""Settings: defaults, then a TOML file, then ``CLICKTHRU_*`` environment variables,
then command-line options; each later source wins."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from clickthru.errors import ConfigError
from clickthru.proxies import networks

ENV_PREFIX = "CLICKTHRU_"
DEFAULT_CONFIG_FILE = "clickthru.toml"


Positive = Annotated[int, msgspec.Meta(ge=1)]
Days = Annotated[int, msgspec.Meta(ge=1, le=36_500)]


class SiteRetention(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One site's own retention, in days; what it leaves out is the store's."""

    events_days: Days | None = None
    rejects_days: Days | None = None


class Retention(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How long raw rows are kept, in whole UTC days (the counters stay)."""

    events_days: Days = 400
    rejects_days: Days = 30
    sessions_days: Days = 14  # a dashboard session row, at most (expired ones go too)
    # Ids of purged events, and the (list, item) pairs already counted as unique: at least
    # the snippet's 5 days of retries plus a day of clocks; raise it to your tokens' ttl.
    event_ids_days: Annotated[int, msgspec.Meta(ge=6, le=36_500)] = 8
    purge: bool = True  # purge in the collector, at a quiet rate
    purge_every: Annotated[float, msgspec.Meta(gt=0)] = 600.0  # seconds between rounds
    sites: dict[str, SiteRetention] = msgspec.field(default_factory=dict)


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8787
    store: str = "clickthru.db"  # a SQLite path, or sqlite:///path
    workers: Positive = 1
    # Proxies (addresses, networks) whose X-Forwarded-For / Forwarded names the visitor:
    # one's own (TLS in front, load balancers), and the shops' first-party proxies, through
    # which only the event paths and ct.js are served.
    trusted_proxies: list[str] = []
    first_party_proxies: list[str] = []
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
    # [retention] in the TOML file, with [retention.sites.NAME] for a site of its own.
    retention: Retention = msgspec.field(default_factory=Retention)
    # An order goes to the last recommended click at most this many days before it.
    attribution_days: Annotated[int, msgspec.Meta(ge=1, le=90)] = 7

    def __post_init__(self) -> None:
        # A ValueError names the entry that is no address or network.
        networks([*self.trusted_proxies, *self.first_party_proxies])


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
    for name in ("trusted_proxies", "first_party_proxies"):
        if isinstance(values.get(name), str):  # from the environment: a,b,c
            entries = values[name].split(",")
            values[name] = [entry.strip() for entry in entries if entry.strip()]
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        # strict=False: environment values are strings ("8787", "true").
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as error:
        raise ConfigError(f"bad setting: {error}") from error
