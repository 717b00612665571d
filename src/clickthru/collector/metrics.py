"""Prometheus metrics of the collector.

With several worker processes, prometheus-client's multiprocess mode is used (the
``PROMETHEUS_MULTIPROC_DIR`` environment variable, set by ``clickthru serve``), so
``/metrics`` adds up every worker.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

disable_created_metrics()  # type: ignore[no-untyped-call] # *_created series only add noise to every scrape

ACCEPTED = Counter("clickthru_events_accepted_total", "Events stored")
DUPLICATES = Counter("clickthru_events_duplicate_total", "Events already stored (retries)")
REJECTED = Counter("clickthru_events_rejected_total", "Events or requests refused", ["reason"])
UNEXPECTED = Counter(
    "clickthru_unexpected_errors_total",
    "Requests that failed with an exception (a bug: see the log)",
)
BATCH_EVENTS = Histogram(
    "clickthru_commit_batch_events",
    "Events per group commit",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000),
)
COMMIT_SECONDS = Histogram(
    "clickthru_commit_seconds",
    "Time to write and commit one group",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


# With a shared store: the spool's backlog and whether the shared store takes shipments.
SPOOL_BACKLOG = Gauge(
    "clickthru_spool_backlog", "Events and rejects waiting in the spool", multiprocess_mode="max"
)
SHARED_STORE_UP = Gauge(
    "clickthru_shared_store_up", "1 when the last shipment succeeded", multiprocess_mode="min"
)
LAST_SHIPPED = Gauge(
    "clickthru_spool_last_shipped_seconds",
    "Unix time of the last shipment to the shared store",
    multiprocess_mode="max",
)


WRITE_FAILURES = Counter(
    "clickthru_write_failures_total", "Durable writes that failed, by cause", ["cause"]
)
WRITE_FAILING = Gauge(
    "clickthru_write_failing", "1 while the last durable write failed", multiprocess_mode="max"
)
FREE_BYTES = Gauge(
    "clickthru_store_free_bytes", "Free disk space where the store lives", multiprocess_mode="min"
)
# How far the report counters trail the stored events (read from the store at each scrape).
LAG_EVENTS = Gauge(
    "clickthru_aggregation_lag_events", "Events stored, not counted yet", multiprocess_mode="max"
)
LAG_SECONDS = Gauge(
    "clickthru_aggregation_lag_seconds",
    "How long the oldest uncounted event has waited",
    multiprocess_mode="max",
)


# Retention (read from the store at each scrape: the totals of every process that purged).
PURGED = Gauge(
    "clickthru_purged_rows",
    "Rows removed past their retention, ever, by kind",
    ["kind"],
    multiprocess_mode="max",
)
OLDEST_KEPT = Gauge(
    "clickthru_oldest_kept_seconds",
    "Unix time of the oldest row kept, by kind",
    ["kind"],
    multiprocess_mode="min",
)


def observe_write_failure(cause: str) -> None:
    WRITE_FAILURES.labels(cause).inc()


def observe_status(status: dict[str, Any]) -> None:
    """The figures /metrics reads off the store at each scrape."""
    WRITE_FAILING.set(1 if status["write_failing"] else 0)
    if status["free_bytes"] is not None:
        FREE_BYTES.set(status["free_bytes"])
    lag = status.get("aggregation")
    if lag is not None:
        LAG_EVENTS.set(lag["lag_events"])
        LAG_SECONDS.set(lag["lag_seconds"])
    retention = status.get("retention")
    if retention is not None:
        for kind, removed in retention["purged"].items():
            PURGED.labels(kind).set(removed)
        for kind in ("event", "reject"):
            oldest = retention[f"oldest_{kind}"]
            if oldest is not None:
                OLDEST_KEPT.labels(f"{kind}s").set(oldest / 1000)
    spool = status.get("spool")
    if spool is not None:
        SPOOL_BACKLOG.set(spool["backlog"])
        SHARED_STORE_UP.set(1 if spool["shared_store"] == "reachable" else 0)
        LAST_SHIPPED.set(spool["last_shipped"] or 0)


def observe_commit(events: int, seconds: float) -> None:
    BATCH_EVENTS.observe(events)
    COMMIT_SECONDS.observe(seconds)


def exposition() -> tuple[bytes, str]:
    """The metrics text and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
