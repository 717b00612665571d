"""Every exception clickthru raises on purpose, in one place: a caller can catch what it
means without importing the part that raised it (a SQLite-only collector never imports
psycopg to learn what "unavailable" is)."""

from __future__ import annotations


class ClickthruError(Exception):
    """Base of clickthru's own errors."""


class ConfigError(ClickthruError, ValueError):
    """A setting is missing, malformed or out of range."""


class TokenError(ClickthruError, ValueError):
    """A token that does not verify. ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StoreError(ClickthruError, RuntimeError):
    """The store cannot do what was asked (a clear message for the operator)."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or gave up for a reason that may pass (connection lost,
    server shutting down, disk full, a write timed out): try again later. A write whose
    commit was cut off may have committed; sending it again is harmless."""
