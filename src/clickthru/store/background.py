"""A thread that works beside the requests for a store's life (counting, forwarding)."""

from __future__ import annotations

import threading


class BackgroundThread:
    """Runs ``run`` on a daemon thread; ``run`` returns once ``stopping`` is set."""

    thread_name = "clickthru-background"

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.stopping.clear()
        self._thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def run(self) -> None:
        raise NotImplementedError
