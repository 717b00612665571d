"""The one Chromium every browser test and benchmark launches: Debian's, headless."""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
# Quiet and alike on every machine: no sandbox (CI runs as root), no GPU, no QUIC, nothing
# in the background that would add requests of its own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
