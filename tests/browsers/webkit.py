"""WebKitGTK (Debian's webkit2gtk-driver): WebKitWebDriver drives MiniBrowser, which has no
headless mode, so it runs under its own Xvfb. Plain WebDriver over HTTP; one driver, session
and MiniBrowser (with its own storage) per visitor."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any

from tests.browsers import LOADED, NAVIGATION_TIMING, Engine, Kind, Tab

DRIVER = "WebKitWebDriver"
MINIBROWSER = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser"
CONTROL = "\ue009"
ENTER = "\ue007"
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the WebDriver key of an element reference
TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Any, timeout: float = TIMEOUT, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"WebKit: no {what} within {timeout:g} s")
        time.sleep(0.02)
    return value


class WebKit(Engine):
    name = "webkit"
    # MiniBrowser opens a new window for target=_blank; middle and ctrl clicks it follows in
    # the same tab, so they are not clicks it can make the way a visitor's browser does.
    kinds = ("same", "blank", "enter")

    def __init__(self) -> None:
        # Xvfb picks a free display and tells it on the pipe.
        read, write = os.pipe()
        self.xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
            pass_fds=(write,),
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(write)
        with os.fdopen(read) as pipe:
            self.display = ":" + pipe.readline().strip()
        probe = self.visitor()
        self.version = str(probe.capabilities.get("browserVersion", "?"))
        probe.close()

    def visitor(self) -> WebKitTab:
        # WebKitWebDriver holds one session at a time: a driver for each visitor.
        return WebKitTab(Driver(self.display))

    def close(self) -> None:
        stop(self.xvfb)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class Driver:
    """One WebKitWebDriver and its one session (one MiniBrowser)."""

    def __init__(self, display: str) -> None:
        self.port = _free_port()
        self.process = subprocess.Popen(
            [DRIVER, f"--port={self.port}"],
            env={**os.environ, "DISPLAY": display},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_until(self._ready, what="WebKitWebDriver")
            options = {"binary": MINIBROWSER, "args": ["--automation"]}
            capabilities = {"alwaysMatch": {"webkitgtk:browserOptions": options}}
            session = self.http("POST", "/session", {"capabilities": capabilities})
        except BaseException:
            stop(self.process)
            raise
        self.session = f"/session/{session['sessionId']}"
        self.capabilities: dict[str, Any] = session["capabilities"]

    def _ready(self) -> bool:
        try:
            self.http("GET", "/status")
            return True
        except OSError:
            return False

    def http(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            method=method,
            data=data,
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.load(response)["value"]
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"WebKit: {method} {path}: {error.read().decode()}") from None

    def close(self) -> None:
        try:
            self.http("DELETE", self.session)
        finally:
            stop(self.process)


class WebKitTab(Tab):
    def __init__(self, driver: Driver) -> None:
        super().__init__()
        self.driver = driver
        self.capabilities = driver.capabilities
        self.shop = self.call("GET", "/window")

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return self.driver.http(method, self.driver.session + path, body)

    def evaluate(self, expression: str) -> Any:
        return self.call("POST", "/execute/sync", {"script": f"return {expression}", "args": []})

    def _poll(self, expression: str) -> Any:
        """evaluate() while the tab may be between two pages: the driver then answers "no
        such frame", which only means "not yet"."""
        try:
            return self.evaluate(expression)
        except RuntimeError as error:
            if "no such frame" in str(error) or "unload" in str(error):
                return None
            raise

    def resize(self, width: int, height: int) -> None:
        self.call("POST", "/window/rect", {"width": width, "height": height})

    def close(self) -> None:
        self.driver.close()

    def _goto(self, url: str) -> None:
        self.call("POST", "/url", {"url": url})
        wait_until(lambda: self._poll(LOADED), what="load")

    def _element(self, selector: str) -> str:
        found = self.call("POST", "/element", {"using": "css selector", "value": selector})
        return str(found[ELEMENT])

    def _click(self, kind: Kind, position: int) -> list[Any]:
        if kind == "blank":
            before = set(self.call("GET", "/window/handles"))
            self.call("POST", f"/element/{self._element(f'#blank-{position}')}/click", {})
            handles = wait_until(
                lambda: set(self.call("GET", "/window/handles")) - before, what="new window"
            )
            self.call("POST", "/window", {"handle": handles.pop()})
            timing = self._destination_timing()
            self.call("DELETE", "/window")
            self.call("POST", "/window", {"handle": self.shop})
            return timing
        link = self._element(f"#same-{position}")
        if kind == "same":
            self.call("POST", f"/element/{link}/click", {})
        else:
            self.call("POST", f"/element/{link}/value", {"text": ENTER})
        return self._destination_timing()

    def _destination_timing(self) -> list[Any]:
        wait_until(
            lambda: self._poll(f"location.pathname.startsWith('/landing/') && {LOADED}"),
            what="destination",
        )
        timing: list[Any] = self.evaluate(NAVIGATION_TIMING)
        return timing


def launch() -> Engine:
    return WebKit()
