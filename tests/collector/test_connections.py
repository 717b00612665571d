"""Slow, idle and oversized connections against a real ``clickthru serve`` process: each is
answered (or, having asked nothing, closed) within bounded time, and while hundreds of them
are held open, everyone else is still served at once."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Collector

REQUEST_TIMEOUT = 1.5  # seconds, set for these tests (the default is 10)
MAX_CONNECTIONS = 64
SLACK = 5.0  # scheduling on a loaded machine; far below "never"
SLOW_CLIENTS = 300


@pytest.fixture
def strict(fresh_collector: Collector, monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    monkeypatch.setenv("CLICKTHRU_REQUEST_TIMEOUT", str(REQUEST_TIMEOUT))
    monkeypatch.setenv("CLICKTHRU_MAX_CONNECTIONS", str(MAX_CONNECTIONS))
    fresh_collector.start()
    yield fresh_collector


def connect(collector: Collector) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", collector.port), timeout=30)
    return sock


def read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    started = time.monotonic()
    received = b""
    while chunk := _recv(sock):
        received += chunk
    return received, time.monotonic() - started


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


def read_answer(sock: socket.socket) -> bytes:
    """One whole answer: its head, then as many bytes as its Content-Length says (the
    server may send the two apart)."""
    received = b""
    while b"\r\n\r\n" not in received and (chunk := _recv(sock)):
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lengths = [line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
    wanted = int(lengths[0].split(b":")[1]) if lengths else 0
    while len(body) < wanted and (chunk := _recv(sock)):
        body += chunk
    return head + b"\r\n\r\n" + body


def status_and_reason(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), answer
    return int(head.split()[1]), json.loads(body)["error"]


def test_an_idle_connection_is_closed_without_a_word(strict: Collector) -> None:
    with connect(strict) as idle:
        answer, waited = read_until_closed(idle)
    assert answer == b""
    assert REQUEST_TIMEOUT - 0.2 <= waited <= REQUEST_TIMEOUT + SLACK


def test_a_slowloris_gets_408_in_bounded_time(strict: Collector) -> None:
    with connect(strict) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: collector\r\n")
        started = time.monotonic()
        slow.settimeout(0.2)
        answer = b""
        while not answer:  # one more header line whenever the server stays silent
            try:
                answer = slow.recv(65536)
            except TimeoutError:
                try:
                    slow.sendall(b"X-Slow: yes\r\n")
                except OSError:
                    break
            except ConnectionResetError:
                break
        slow.settimeout(30)
        rest, _ = read_until_closed(slow)
        waited = time.monotonic() - started
    assert status_and_reason(answer + rest) == (408, "request_timeout")
    assert waited <= REQUEST_TIMEOUT + SLACK


def test_a_body_sent_a_byte_at_a_time_gets_408(strict: Collector) -> None:
    with connect(strict) as slow:
        slow.sendall(
            b"POST /e HTTP/1.1\r\nHost: collector\r\ncontent-type: text/plain\r\n"
            b"content-length: 1000\r\n\r\n["
        )
        answer, waited = read_until_closed(slow)
    assert status_and_reason(answer) == (408, "request_timeout")
    assert waited <= REQUEST_TIMEOUT + SLACK
    assert httpx.get(f"{strict.url}/healthz").status_code == 200


def test_hundreds_of_slow_clients_do_not_starve_the_others(strict: Collector) -> None:
    """More slow connections than the server keeps: the ones waiting longest make room."""
    slow: list[socket.socket] = []
    try:
        for _ in range(SLOW_CLIENTS):
            sock = connect(strict)
            slow.append(sock)
            with contextlib.suppress(OSError):  # already closed to make room
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: collector\r\n")  # and no more
        with httpx.Client(base_url=strict.url, timeout=REQUEST_TIMEOUT) as client:
            for _ in range(20):
                started = time.monotonic()
                assert client.get("/healthz", headers={"connection": "close"}).status_code == 200
                stored = strict.post(strict.event(), headers={"connection": "close"})
                assert stored.json()["accepted"] == 1
                assert time.monotonic() - started < REQUEST_TIMEOUT  # not a slow client's wait
        started = time.monotonic()
        answers = [read_until_closed(sock)[0] for sock in slow]
        assert time.monotonic() - started <= REQUEST_TIMEOUT + SLACK
    finally:
        for sock in slow:
            sock.close()
    # Each slow client was answered, made room for or out of time; closed without a word
    # only when the server had not yet read a byte from it as it made room.
    answered = [status_and_reason(answer) for answer in answers if answer]
    assert set(answered) == {(408, "request_timeout")}
    assert len(answered) >= SLOW_CLIENTS // 2


def test_heads_over_the_limits_and_unparsable_requests_get_json_reasons(
    strict: Collector,
) -> None:
    cases = {
        b"GET /healthz HTTP/1.1\r\nHost: c\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n": (
            431,
            "head_too_large",
        ),
        b"GET /healthz HTTP/1.1\r\nHost: c\r\n"
        + b"".join(b"X-%d: 1\r\n" % n for n in range(150))
        + b"\r\n": (431, "head_too_large"),
        b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: c\r\n\r\n": (431, "head_too_large"),
        b"NOT HTTP AT ALL\r\n\r\n": (400, "bad_request"),
        b"GET /healthz HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n": (
            400,
            "bad_request",
        ),
    }
    for request, expected in cases.items():
        with connect(strict) as sock:
            sock.sendall(request)
            answer, _ = read_until_closed(sock)
        assert status_and_reason(answer) == expected, request[:60]


def test_a_body_declared_too_large_is_refused_before_it_is_sent(strict: Collector) -> None:
    with connect(strict) as sock:
        sock.sendall(
            b"POST /e HTTP/1.1\r\nHost: c\r\ncontent-type: text/plain\r\n"
            b"content-length: 104857600\r\n\r\n"
        )
        answer = read_answer(sock)  # without a byte of the 100 MiB sent
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b'"error":"body_too_large"' in answer
