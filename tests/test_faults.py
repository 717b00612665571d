"""FaultyEndpoint, the controllable faulty network endpoint of the browser tests, in each mode."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.faults import MODES, FaultyEndpoint

pytestmark = pytest.mark.timeout(30)


class OkHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the collector does

    def _ok(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    do_GET = do_POST = _ok

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), OkHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def module_endpoint(upstream: int) -> Iterator[FaultyEndpoint]:
    with FaultyEndpoint(upstream, slow_seconds=1.0) as endpoint:
        yield endpoint


@pytest.fixture
def endpoint(module_endpoint: FaultyEndpoint) -> FaultyEndpoint:
    module_endpoint.set_mode("up")
    return module_endpoint


def get(endpoint: FaultyEndpoint, timeout: float = 2.0) -> httpx.Response:
    return httpx.get(f"{endpoint.url}/healthz", timeout=timeout)


def test_up_proxies_to_upstream(endpoint: FaultyEndpoint) -> None:
    response = get(endpoint)
    assert (response.status_code, response.text) == (200, "ok")


def test_up_keeps_keepalive_connections_flowing(endpoint: FaultyEndpoint) -> None:
    with httpx.Client(timeout=2) as client:
        for _ in range(3):
            assert client.post(f"{endpoint.url}/e", content=b"x" * 10_000).text == "ok"


def test_slow_answers_late(endpoint: FaultyEndpoint) -> None:
    endpoint.set_mode("slow")
    started = time.monotonic()
    response = get(endpoint, timeout=5)
    assert (response.status_code, response.text) == (200, "ok")
    assert time.monotonic() - started >= 0.9


def test_hang_never_answers_and_closes_held_connections_on_leaving(
    endpoint: FaultyEndpoint,
) -> None:
    endpoint.set_mode("hang")
    with pytest.raises(httpx.ReadTimeout):
        get(endpoint, timeout=1)
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=2) as held:
        held.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        time.sleep(0.1)  # accepted and read by the endpoint, not only by the kernel
        endpoint.set_mode("up")
        assert held.recv(100) == b""  # closed without an answer
    assert get(endpoint).status_code == 200


def test_error_answers_500_with_json_and_cors(endpoint: FaultyEndpoint) -> None:
    endpoint.set_mode("error")
    for method, body in (("GET", None), ("POST", b'{"kind":"click"}' * 100), ("OPTIONS", None)):
        response = httpx.request(method, f"{endpoint.url}/e", content=body, timeout=2)
        assert response.status_code == 500, method
        assert response.json() == {"error": "internal"}
        assert response.headers["content-type"] == "application/json"
        assert response.headers["access-control-allow-origin"] == "*"
        assert response.headers["connection"] == "close"


def test_error_closes_open_keepalive_connections(endpoint: FaultyEndpoint) -> None:
    with httpx.Client(timeout=2) as client:
        assert client.get(f"{endpoint.url}/").status_code == 200
        endpoint.set_mode("error")
        time.sleep(0.05)  # the close reaches the client's idle connection
        assert client.get(f"{endpoint.url}/").status_code == 500


def test_refuse_refuses_connections(endpoint: FaultyEndpoint) -> None:
    endpoint.set_mode("refuse")
    with pytest.raises(httpx.ConnectError):
        get(endpoint)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", endpoint.port), timeout=2).close()
    endpoint.set_mode("up")
    assert get(endpoint).status_code == 200


def test_drop_leaves_connects_unanswered(endpoint: FaultyEndpoint) -> None:
    endpoint.set_mode("drop")
    with pytest.raises(httpx.ConnectTimeout):
        httpx.get(endpoint.url, timeout=httpx.Timeout(2, connect=1))
    endpoint.set_mode("up")
    assert get(endpoint).status_code == 200


def test_every_mode_switch_keeps_the_port(endpoint: FaultyEndpoint) -> None:
    # Each mode after each other mode, ending in "up", which must still proxy.
    for previous in MODES:
        for mode in MODES:
            endpoint.set_mode(previous)
            endpoint.set_mode(mode)
    endpoint.set_mode("up")
    assert get(endpoint).status_code == 200


def test_stop_frees_the_port_and_the_thread(upstream: int) -> None:
    endpoint = FaultyEndpoint(upstream)
    endpoint.start()
    endpoint.set_mode("drop")
    endpoint.stop()
    assert f"FaultyEndpoint:{endpoint.port}" not in {t.name for t in threading.enumerate()}
    # Nothing left listening on the port.
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", endpoint.port))
