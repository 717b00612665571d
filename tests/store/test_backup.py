"""Backups of a live SQLite store: a real collector process keeps acknowledging beacons
while `clickthru backup` copies its store; the copy, restored elsewhere, passes SQLite's
integrity check and holds every event acknowledged before the backup began. A restore
refuses to replace a store a collector has open."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import SHOP_ORIGIN, Collector


def clickthru(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clickthru", "--store", str(store), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=store.parent,
    )


class Load(threading.Thread):
    """Beacons one after another; notes when each was acknowledged."""

    def __init__(self, collector: Collector) -> None:
        super().__init__(daemon=True)
        self.collector = collector
        self.acknowledged: list[tuple[float, str]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        headers = {"content-type": "text/plain;charset=UTF-8", "origin": SHOP_ORIGIN}
        with httpx.Client(base_url=self.collector.url, headers=headers, timeout=10) as http:
            while not self.stopping.is_set():
                events = [self.collector.event() for _ in range(5)]
                answer = http.post("/e", json=events)
                assert answer.status_code == 200 and answer.json()["accepted"] == 5
                at = time.monotonic()
                self.acknowledged += [(at, event["id"]) for event in events]


def test_a_backup_under_load_restored_elsewhere_holds_every_event_acknowledged_before(
    fresh_collector: Collector, tmp_path: Path
) -> None:
    fresh_collector.start()
    load = Load(fresh_collector)
    load.start()
    while len(load.acknowledged) < 2000:  # a store with something in it, still loading
        assert load.is_alive()
        time.sleep(0.05)
    copy = tmp_path / "backup" / "copy.db"
    copy.parent.mkdir()
    began = time.monotonic()
    made = clickthru(fresh_collector.db, "backup", str(copy))
    assert made.returncode == 0, made.stderr
    assert "integrity check ok" in made.stdout
    ended = time.monotonic()
    while load.acknowledged[-1][0] <= ended:  # acknowledging went on throughout
        assert load.is_alive()
        time.sleep(0.05)
    load.stopping.set()
    load.join()
    during = [at for at, _ in load.acknowledged if began < at < ended]
    assert during, "beacons were acknowledged while the backup ran"

    # The running store cannot be replaced.
    refused = clickthru(fresh_collector.db, "restore", str(copy))
    assert refused.returncode == 1 and "in use" in refused.stderr

    elsewhere = tmp_path / "elsewhere" / "restored.db"
    elsewhere.parent.mkdir()
    restored = clickthru(elsewhere, "restore", str(copy))
    assert restored.returncode == 0, restored.stderr
    with contextlib.closing(sqlite3.connect(elsewhere)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        there = {event_id for (event_id,) in conn.execute("SELECT id FROM events")}
    before = {event_id for at, event_id in load.acknowledged if at < began}
    assert len(before) >= 2000
    assert before <= there
    # The restored store opens and answers like any other.
    report = clickthru(elsewhere, "report", "--since", "1d", "--format", "json")
    assert report.returncode == 0, report.stderr


def test_a_restore_puts_the_replaced_store_aside(tmp_path: Path) -> None:
    from clickthru.backend import open_store

    first, second = tmp_path / "first.db", tmp_path / "second.db"
    for path, site in ((first, "one"), (second, "two")):
        store = open_store(str(path))
        store.admin.add_site(site, [SHOP_ORIGIN])
        store.close()
    copy = tmp_path / "first-copy.db"
    assert clickthru(first, "backup", str(copy)).returncode == 0
    assert clickthru(first, "backup", str(copy)).returncode == 1  # never overwrites
    done = clickthru(second, "restore", str(copy))
    assert done.returncode == 0, done.stderr
    assert "replaced is at" in done.stdout
    listed = clickthru(second, "site", "list")
    assert listed.stdout.startswith("one")
    aside = next(tmp_path.glob("second.db.before-restore-*"))
    with contextlib.closing(sqlite3.connect(aside)) as conn:
        assert conn.execute("SELECT name FROM sites").fetchall() == [("two",)]
