"""Backups of a SQLite store, and putting one back.

``backup`` copies a live store with SQLite's online backup API from a reading connection,
in one step: the copy is the database as it was when the step began (every event
acknowledged by then), and in WAL mode reading blocks no writer, so the collector keeps
acknowledging meanwhile. ``restore`` puts a copy in place of a store only when no process
has the store open: each one holds the store's in-use lock shared, and a restore takes it
exclusively, or refuses.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from clickthru.errors import StoreError
from clickthru.store.sqlite import BUSY_TIMEOUT_MS, in_use_lock


@dataclass(frozen=True, slots=True)
class Copied:
    path: str
    events: int
    bytes: int
    seconds: float
    replaced: str | None = None  # where the store a restore replaced was put aside


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def check(path: str) -> int:
    """Raises unless ``path`` is a clickthru store that passes SQLite's integrity check;
    returns the events in it."""
    if not Path(path).is_file():
        raise StoreError(f"no file at {path}")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            result = conn.execute("PRAGMA integrity_check").fetchall()
            if result != [("ok",)]:
                raise StoreError(f"{path} fails the integrity check: {result[:5]}")
            (events,) = conn.execute("SELECT count(*) FROM events").fetchone()
    except sqlite3.Error as error:
        raise StoreError(f"{path} is not a clickthru store: {error}") from error
    return int(events)


def _copy(source: str, target: str) -> None:
    """The online backup API, all pages in one step (one consistent read)."""
    with (
        contextlib.closing(_connect(source)) as src,
        contextlib.closing(sqlite3.connect(target, isolation_level=None)) as dst,
    ):
        src.backup(dst)
        dst.execute("PRAGMA journal_mode = WAL")  # as the store runs
    with open(target, "rb") as written:
        os.fsync(written.fileno())


def backup(store: str, target: str) -> Copied:
    """A consistent copy of a (possibly live) store at ``target``, which must not exist."""
    if not Path(store).is_file():
        raise StoreError(f"no SQLite store at {store}")
    if Path(target).exists():
        raise StoreError(f"{target} exists already: a backup never overwrites")
    started = time.perf_counter()
    partial = f"{target}.partial"
    try:
        _copy(store, partial)
        events = check(partial)
        os.replace(partial, target)
    except sqlite3.Error as error:
        raise StoreError(f"backup failed: {error}") from error
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)
    return Copied(target, events, Path(target).stat().st_size, time.perf_counter() - started)


def restore(copy: str, store: str) -> Copied:
    """Puts ``copy`` in place of ``store``; the store there before is kept aside. Refuses
    while any process has the store open."""
    events = check(copy)
    started = time.perf_counter()
    with open(in_use_lock(store), "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(
                f"{store} is in use (a collector or another command has it open): stop it first"
            ) from None
        replaced = None
        if Path(store).exists():
            # Into the file first, what its WAL still holds, then aside.
            with contextlib.closing(_connect(store)) as old:
                old.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            replaced = f"{store}.before-restore-{time.strftime('%Y%m%dT%H%M%S')}"
            os.replace(store, replaced)
        for leftover in (f"{store}-wal", f"{store}-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(leftover)
        partial = f"{store}.partial"
        try:
            _copy(copy, partial)
            os.replace(partial, store)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(partial)
    size = Path(store).stat().st_size
    return Copied(store, events, size, time.perf_counter() - started, replaced)
