"""Firefox ESR (Debian's firefox-esr) through puppeteer-core over WebDriver BiDi: Playwright
cannot drive it. A Node process (firefox.mjs) holds the browser; each call is one JSON line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.browsers import NAVIGATION_TIMING, Engine, Kind, Tab

HERE = Path(__file__).parent
FIREFOX = "/usr/bin/firefox-esr"


class Firefox(Engine):
    name = "firefox"
    kinds = ("same", "blank", "middle", "ctrl", "enter")

    def __init__(self, headless: bool = True) -> None:
        if not (HERE / "node_modules" / "puppeteer-core").exists():
            raise RuntimeError("puppeteer-core is missing: npm ci --prefix tests/browsers")
        env = {**os.environ, "FIREFOX": FIREFOX, "HEADLESS": "1" if headless else "0"}
        self.process = subprocess.Popen(
            ["node", str(HERE / "firefox.mjs")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
            start_new_session=True,
        )
        self.version = str(self.call("version"))

    def call(self, op: str, **arguments: Any) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the Firefox driver ended (exit {self.process.wait()})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"Firefox: {op}: {answer['error']}")
        return answer["value"]

    def visitor(self) -> Tab:
        return FirefoxTab(self, int(self.call("visitor")))

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()


class FirefoxTab(Tab):
    def __init__(self, engine: Firefox, page: int) -> None:
        super().__init__()
        self.engine = engine
        self.page = page

    def evaluate(self, expression: str) -> Any:
        return self.engine.call("evaluate", page=self.page, expression=expression)

    def resize(self, width: int, height: int) -> None:
        self.engine.call("resize", page=self.page, width=width, height=height)

    def close(self) -> None:
        self.engine.call("close", page=self.page)

    def _goto(self, url: str) -> None:
        self.engine.call("goto", page=self.page, url=url)

    def _click(self, kind: Kind, position: int) -> list[Any]:
        timing: list[Any] = self.engine.call(
            "click", page=self.page, kind=kind, position=position, timing=NAVIGATION_TIMING
        )
        return timing


def launch(headless: bool = True) -> Engine:
    return Firefox(headless)
