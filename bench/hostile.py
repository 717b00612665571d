"""A hostile run against a real ``clickthru serve``: at least 100,000 generated inputs.

Over real HTTP (a fresh connection per request, ``Connection: close``, several at once):
the hypothesis strategies of the fuzz test (``tests/hostile.py``) for every route of the
collector, the API and the dashboard, as a stranger, an operator's session or a
customer's; then raw bytes no HTTP client would send (unparsable request lines, heads too
big, bodies declared bigger than allowed, a few hundred slowloris connections).

It counts the answers by status, and checks what the fuzz test checks:

- no 5xx;
- no connection closed without an answer to a request sent whole;
- every refusal of the intake is in ``rejects`` with its reason (the same count per
  reason as the answers said);
- every good event sent among the hostile ones is stored, once.

Run (a few minutes on 2 cores)::

    flock /tmp/clickthru-bench.lock .venv/bin/python bench/hostile.py
    flock /tmp/clickthru-bench.lock .venv/bin/python bench/hostile.py --inputs 20000 --workers 2
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import queue
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import collector, free_port
from tests.hostile import Request, Tokens, any_request
from tests.inprocess import PASSWORD, add_sites_and_users

from clickthru.backend import open_store

PER_EXAMPLE = 50
EXAMPLES_PER_ROUND = 200
TIMEOUT = 30.0  # seconds a client waits for an answer: far beyond any the server takes


@dataclass
class Tally:
    """What the answers said (thread-safe: answers arrive from the sending threads)."""

    statuses: Counter[int] = field(default_factory=Counter)
    routes: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    stored: set[str] = field(default_factory=set)
    unanswered: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request: Request, status: int, body: bytes) -> None:
        with self.lock:
            self.statuses[status] += 1
            route = request.route
            self.routes[_group(route)] += 1
            if status >= 500:
                self.server_errors.append(f"{request!r} -> {status} {body[:300]!r}")
                return
            if not request.intake:
                return
            answer = httpx.Response(status, content=body)
            if route == "/e" and status == 200:
                refused = {r["index"]: r["reason"] for r in answer.json()["rejected"]}
                self.rejected.update(refused.values())
                self.stored.update(v for k, v in request.good.items() if k not in refused)
            elif status in (200, 204):
                self.stored.update(request.good.values())
            elif status >= 400 and answer.json()["error"] != "method_not_allowed":
                self.rejected[answer.json()["error"]] += 1


def _group(route: str) -> str:
    if route.startswith("/api/"):
        return "api"
    return "dashboard" if route.startswith("/dashboard") else "collector"


def send(port: int, request: Request, cookie: str, tally: Tally) -> None:
    """One request on a connection of its own; its answer into the tally."""
    headers = {**request.headers, "connection": "close"}
    if cookie:
        headers["cookie"] = cookie
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        try:
            conn.request(request.method, request.url, body=request.content, headers=headers)
        except (http.client.InvalidURL, ValueError, UnicodeEncodeError):
            return  # nothing a client could send: not an input
        except OSError:
            pass  # the server may answer (413, 431) before it has read all: read the answer
        try:
            answer = conn.getresponse()
            body = answer.read()
        except (http.client.HTTPException, OSError) as error:
            with tally.lock:
                tally.unanswered.append(f"{request!r}: {error!r}")
            return
        tally.add(request, answer.status, body)
    finally:
        conn.close()


def signed_in_cookie(url: str, name: str) -> str:
    with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        form = client.get("/dashboard/sign-in")
        csrf = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        answer = client.post(
            "/dashboard/sign-in", data={"name": name, "password": PASSWORD, "csrf": csrf}
        )
        assert answer.status_code == 303, answer.text
        return f"ct_session={client.cookies['ct_session']}"


def generated(
    port: int, pool: Tokens, keys: dict[str, str], inputs: int, threads: int, tally: Tally
) -> None:
    """The strategies' requests, drawn by hypothesis in this thread, sent by a pool."""
    url = f"http://127.0.0.1:{port}"
    cookies = ["", signed_in_cookie(url, "ops"), signed_in_cookie(url, "shopkeeper")]
    pending: queue.Queue[Future[None]] = queue.Queue(maxsize=threads * 8)
    with ThreadPoolExecutor(threads) as executor:

        @settings(
            max_examples=EXAMPLES_PER_ROUND,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(
            st.lists(any_request(pool, keys), min_size=PER_EXAMPLE, max_size=PER_EXAMPLE),
            st.sampled_from(cookies),
        )
        def draw(requests: list[Request], cookie: str) -> None:
            for request in requests:
                while pending.full():
                    pending.get().result()
                pending.put(executor.submit(send, port, request, cookie, tally))

        # In rounds: hypothesis remembers every example of a run, and 100,000 requests'
        # worth takes gigabytes.
        for _ in range(-(-inputs // (PER_EXAMPLE * EXAMPLES_PER_ROUND))):
            draw()
        while not pending.empty():
            pending.get().result()


RAW = {
    "unparsable request line": b"NOT HTTP AT ALL\r\n\r\n",
    "bad method": b"G\x00T / HTTP/1.1\r\nHost: c\r\n\r\n",
    "bad version": b"GET / HTTP/9.9\r\nHost: c\r\n\r\n",
    "header without colon": b"GET / HTTP/1.1\r\nHost c\r\n\r\n",
    "content-length overflow": b"POST /e HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
    "two content-lengths": b"POST /e HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "head too big": b"GET /healthz HTTP/1.1\r\nX: " + b"a" * 100_000 + b"\r\n\r\n",
    "too many headers": b"GET /healthz HTTP/1.1\r\n" + b"X-A: 1\r\n" * 500 + b"\r\n",
    "url too long": b"GET /p.gif?" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: c\r\n\r\n",
    "body declared 1 GiB": (
        b"POST /e HTTP/1.1\r\nHost: c\r\ncontent-type: text/plain\r\n"
        b"content-length: 1073741824\r\n\r\n"
    ),
    "form declared 2 GB": b"POST /dashboard/sign-in HTTP/1.1\r\ncontent-length: 2000000000\r\n\r\n",
    "chunked garbage": b"POST /e HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
    "smuggling": (
        b"POST /e HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
}


def raw(port: int, rounds: int, tally: Tally) -> None:
    """Bytes no HTTP client would send: each must be answered (4xx, JSON)."""
    for _ in range(rounds):
        for name, data in RAW.items():
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
                with contextlib.suppress(OSError):  # answered and closed before all was read
                    sock.sendall(data)
                status, body = _read_answer(sock)
            with tally.lock:
                tally.routes["raw"] += 1
                if status == 0:
                    tally.unanswered.append(f"raw {name}")
                    continue
                tally.statuses[status] += 1
                if status >= 500:
                    tally.server_errors.append(f"raw {name} -> {status} {body[:200]!r}")
                elif data.startswith(b"POST /e ") and status != 400:  # 400: httptools's
                    tally.rejected[json.loads(body)["error"]] += 1


def slowloris(port: int, connections: int, tally: Tally) -> float:
    """Connections that send half a head and stop: each must get its 408; returns the
    longest wait for it."""
    socks = []
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: c\r\nX-Slow: ")
        socks.append(sock)
    started, longest = time.monotonic(), 0.0
    for sock in socks:
        with sock:
            status, _ = _read_answer(sock)
        longest = max(longest, time.monotonic() - started)
        with tally.lock:
            tally.routes["slowloris"] += 1
            if status == 0:
                tally.unanswered.append("slowloris")
            else:
                tally.statuses[status] += 1
    return longest


def _read_answer(sock: socket.socket) -> tuple[int, bytes]:
    """The status and body of the answer on ``sock``; status 0 when there is none."""
    data = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in data and (chunk := sock.recv(65536)):
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n")
             if line.lower().startswith(b"content-length:")),
            0,
        )  # fmt: skip
        while len(body) < length and (chunk := sock.recv(65536)):
            body += chunk
        if data.startswith(b"HTTP/1.1 "):
            return int(data.split()[1]), body
    return 0, b""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="generated requests")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=16, help="requests at once")
    parser.add_argument("--raw-rounds", type=int, default=100, help="rounds of the raw inputs")
    parser.add_argument("--slow", type=int, default=500, help="slowloris connections")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="clickthru-hostile-") as directory:
        db = Path(directory) / "clickthru.db"
        store = open_store(str(db))
        sites, keys = add_sites_and_users(store, {})
        store.close()
        pool = Tokens.of(sites["shop"], sites["other"])
        port = free_port()
        tally = Tally()
        with collector(db, port, args.workers, Path(directory) / "collector.log"):
            started = time.monotonic()
            generated(port, pool, keys, args.inputs, args.threads, tally)
            sent = time.monotonic() - started
            raw(port, args.raw_rounds, tally)
            longest_slow = slowloris(port, args.slow, tally)
            healthy = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=TIMEOUT).status_code
        return report(db, tally, sent, longest_slow, healthy)


def report(db: Path, tally: Tally, sent: float, longest_slow: float, healthy: int) -> int:
    with sqlite3.connect(db) as conn:
        recorded = dict(conn.execute("SELECT reason, count(*) FROM rejects GROUP BY reason"))
        good = sorted(tally.stored)
        stored: set[str] = set()
        for start in range(0, len(good), 500):
            chunk = good[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            query = f"SELECT id FROM events WHERE id IN ({marks})"
            stored.update(row[0] for row in conn.execute(query, chunk))
    total = sum(tally.routes.values())
    classes = Counter(f"{status // 100}xx" for status in tally.statuses.elements())
    print(f"inputs sent: {total:,} ({', '.join(f'{k} {v:,}' for k, v in tally.routes.items())})")
    generated_count = sum(tally.routes[k] for k in ("collector", "api", "dashboard"))
    print(f"generated requests: {generated_count:,} in {sent:.0f} s")
    print(f"answers by class: {dict(sorted(classes.items()))}")
    print(f"answers by status: {dict(sorted(tally.statuses.items()))}")
    print(f"5xx answers: {len(tally.server_errors)}")
    print(f"connections closed without an answer: {len(tally.unanswered)}")
    print(f"slowloris: all answered within {longest_slow:.1f} s")
    same = recorded == dict(tally.rejected)
    print(f"refusals in rejects as answered: {same} ({sum(recorded.values()):,} rows)")
    print(f"good events stored once: {len(stored):,} of {len(good):,}")
    print(f"/healthz afterwards: {healthy}")
    for line in (tally.server_errors + tally.unanswered)[:20]:
        print("  ", line)
    if recorded != dict(tally.rejected):
        print("   rejects by reason, stored vs answered:", recorded, dict(tally.rejected))
    ok = (
        not tally.server_errors
        and not tally.unanswered
        and recorded == dict(tally.rejected)
        and stored == tally.stored
        and healthy == 200
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
