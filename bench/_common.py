"""Helpers shared by the benchmark scripts in ``bench/``: free ports, starting and
stopping the collector, registering a throw-away site, and CPU accounting.

Not part of the test suite; nothing here is imported by ``clickthru`` itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from clickthru import tokens
from clickthru.collector.app import SETTINGS_ENV
from clickthru.privacy import VisitorKeys
from clickthru.store.rows import EventRow
from clickthru.store.sites import SiteAdmin

SITE = "bench"
SITE_ORIGIN = "http://127.0.0.1:9999"
# What Chromium sends with a sendBeacon of text/plain from SITE_ORIGIN (minus cookies).
BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/126.0.0.0 Safari/537.36"
)
BROWSER_HEADERS: dict[str, str] = {
    "User-Agent": BROWSER_UA,
    "Accept": "*/*",
    "Accept-Language": "en-US,en;q=0.9",
    "Accept-Encoding": "gzip, deflate, br",
    "Referer": SITE_ORIGIN + "/book/x",
    "Sec-Fetch-Site": "cross-site",
    "Sec-Fetch-Mode": "no-cors",
    "Sec-Fetch-Dest": "empty",
}
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clickthru(store: Path, *args: str, timeout: float = 60) -> str:
    """Run the ``clickthru`` CLI on ``store``; returns its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "clickthru", "--store", str(store), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=store.parent,  # so no ./clickthru.toml of the caller's is picked up
    )
    if done.returncode != 0:
        raise RuntimeError(f"clickthru {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def register_site(store: Path) -> None:
    """Register the bench site (origin SITE_ORIGIN) in a fresh store, with the CLI."""
    clickthru(store, "site", "add", SITE, "--origin", SITE_ORIGIN)


def cli_token(store: Path, list_id: str = "l1", item: str = "book-1", position: int = 1) -> str:
    """One attribution token minted with the CLI."""
    return clickthru(
        store,
        "token",
        "--site",
        SITE,
        "--list-id",
        list_id,
        "--item",
        item,
        "--position",
        str(position),
        "--placement",
        "bench",
    ).strip()


def wait_http(url: str, deadline_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until ``url`` answers 2xx; fail if ``proc`` exits or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if 200 <= answer.status < 300:
                    return
                last = answer.status
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {deadline_s}s (last: {last})")


def pin(cpus: set[int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that restricts the child (and what it forks) to ``cpus``."""
    if not cpus:
        return None

    def restrict() -> None:
        os.sched_setaffinity(0, cpus)

    return restrict


def parse_cpus(text: str | None) -> set[int] | None:
    """``"0"`` or ``"0,1"`` to a CPU set for ``pin``; None or empty means no pinning."""
    return {int(part) for part in text.split(",")} if text else None


def start(
    argv: list[str],
    log: Path,
    env: Mapping[str, str] | None = None,
    cpus: set[int] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server in its own process group (cwd: the log's folder), output to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=dict(env) if env is not None else None,
            cwd=log.parent,
            preexec_fn=pin(cpus),
        )


def stop(proc: subprocess.Popen[bytes], grace_s: float = 10) -> None:
    """Stop a server started by ``start``: SIGTERM, then SIGKILL its process group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace_s)
    # Whatever is left in the group we created (uvicorn workers, nginx workers).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


SERVERS = ("uvicorn", "granian")


def collector_argv(store: Path, port: int, workers: int, server: str = "uvicorn") -> list[str]:
    """``clickthru serve`` (uvicorn); or the same app under granian, to compare servers."""
    if server == "granian":
        return [
            sys.executable, "-m", "granian", "--interface", "asgi", "--factory",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--loop", "uvloop", "--no-access-log", "--log-level", "warning",
            "clickthru.collector.app:app_from_env",
        ]  # fmt: skip
    return [
        sys.executable, "-m", "clickthru", "--store", str(store),
        "serve", "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip


@contextlib.contextmanager
def collector(
    store: Path,
    port: int,
    workers: int,
    log: Path,
    env: Mapping[str, str] | None = None,
    cpus: set[int] | None = None,
    server: str = "uvicorn",
) -> Iterator[subprocess.Popen[bytes]]:
    """A running collector, healthy, stopped on exit."""
    full_env = {**os.environ, "CLICKTHRU_LOG_LEVEL": "warning", **(env or {})}
    # What `clickthru serve` hands its workers; granian's workers read it the same way.
    full_env[SETTINGS_ENV] = json.dumps({"store": str(store), "log_level": "warning"})
    if workers > 1:
        # Kept with the run, so a killed run leaves nothing behind in /tmp.
        metrics_dir = log.parent / f"metrics-{port}"
        metrics_dir.mkdir(exist_ok=True)
        full_env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
    proc = start(collector_argv(store, port, workers, server), log, full_env, cpus)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", 30, proc)
        yield proc
    finally:
        stop(proc)


def count_rows(store: Path, table: str) -> int:
    """Rows in ``table`` (``events`` or ``rejects``) of a SQLite store."""
    conn = sqlite3.connect(store, timeout=10)
    try:
        count: int = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return count
    finally:
        conn.close()


# -- CPU accounting ------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of all its threads) from /proc, or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu(root: int) -> float:
    """CPU seconds used so far by ``root`` and its living descendants."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            found = _stat(int(entry))
            if found is not None:
                parents[int(entry)], cpu[int(entry)] = found
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return total


def tree_pids(root: int) -> list[int]:
    """``root`` and its living descendants."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            found = _stat(int(entry))
            if found is not None:
                parents[int(entry)] = found[0]
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return pids


@dataclass(frozen=True)
class SystemCpu:
    busy: float  # seconds, all cores
    total: float

    @staticmethod
    def now() -> SystemCpu:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        total = sum(values[:8])  # without guest time, already counted in user
        return SystemCpu((total - idle) / CLK_TCK, total / CLK_TCK)

    def since(self, before: SystemCpu) -> float:
        """Share of all cores busy between ``before`` and this sample (0..1)."""
        span = self.total - before.total
        return (self.busy - before.busy) / span if span > 0 else 0.0


# -- a workload of events, as a recommendation service's pages would send them -------------

BATCH = 250  # what fits the collector's 64 KiB body limit (and a keepalive fetch)


@dataclass(frozen=True)
class Workload:
    bodies: list[bytes]  # one JSON array of BATCH events per request
    counts: list[int]
    rows: list[EventRow]  # what PostgreSQL should end with, in the same order


def make_workload(sites: SiteAdmin, events: int, lists: int, per_list: int) -> Workload:
    """Events with valid tokens in request bodies of BATCH, and the rows a collector
    makes of them (what the store should end with, in the same order)."""
    key = sites.site(SITE).signing_key
    # The collector keys visitors with the store's salt of the day; so does this.
    visitor = VisitorKeys(sites.daily_salt).key("127.0.0.1", BROWSER_HEADERS["User-Agent"], SITE)
    minted: list[tuple[str, tokens.Claims]] = []
    for list_no in range(lists):
        for position in range(1, per_list + 1):
            token = tokens.mint(
                site=SITE,
                key_id=key.key_id,
                secret=key.secret,
                list_id=f"list-{list_no:06d}",
                item=f"book-{(list_no * 7919 + position * 104729) % 100_000:06d}",
                position=position,
                placement="product-page-bottom",
            )
            minted.append((token, tokens.verify(token, lambda site, key_id: key.secret)))
    prefix = secrets.token_hex(4)
    now_ms = int(time.time() * 1000)
    bodies: list[bytes] = []
    counts: list[int] = []
    rows: list[EventRow] = []
    batch: list[dict[str, Any]] = []
    for n in range(events):
        token, claims = minted[n % len(minted)]
        kind = "click" if n % 10 == 0 else "view"
        event: dict[str, Any] = {
            "id": f"r{prefix}-{n:09d}",
            "kind": kind,
            "token": token,
            "ts": now_ms - (events - n),
            "page": f"{SITE_ORIGIN}/book/{claims.item}",
            "via": "fetch",
        }
        if kind == "click":
            event["dest"] = f"{SITE_ORIGIN}/book/{n % 997}"
        batch.append(event)
        rows.append(
            EventRow(
                event["id"], kind, claims.site, claims.list_id, claims.item, claims.position,
                claims.placement, claims.key_id, claims.issued_at, event["ts"], now_ms,
                event["page"], event.get("dest"), "fetch", SITE_ORIGIN, False, visitor,
            )
        )  # fmt: skip
        if len(batch) == BATCH or n == events - 1:
            bodies.append(msgspec.json.encode(batch))
            counts.append(len(batch))
            batch = []
    return Workload(bodies, counts, rows)


# -- how far counting trails storing ---------------------------------------------------------


def sqlite_lag(store: Path) -> tuple[int, float]:
    """(events stored and not counted, seconds the oldest of them has waited), read from
    a SQLite store's file as the collector's /metrics reads it."""
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10)
    try:
        (after,) = conn.execute("SELECT seq FROM aggregation WHERE name = 'events'").fetchone()
        waiting, oldest = conn.execute(
            "SELECT count(*), min(received_at) FROM events WHERE seq > ?", (after,)
        ).fetchone()
    finally:
        conn.close()
    if not waiting:
        return 0, 0.0
    return int(waiting), max(0.0, time.time() - oldest / 1000)


def wait_counted(store: Path, timeout: float = 600) -> float:
    """Seconds until every stored event of a SQLite store is counted."""
    started = time.perf_counter()
    while sqlite_lag(store)[0]:
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"events still uncounted after {timeout} s")
        time.sleep(0.02)
    return time.perf_counter() - started
