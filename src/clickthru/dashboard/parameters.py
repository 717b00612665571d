"""The reports API's query parameters, each said once: how a request's value is read (or
refused, with what it may be), and how the OpenAPI document describes it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from starlette.datastructures import QueryParams

from clickthru import params
from clickthru.clock import ISO_MOMENT, MOMENT_RANGE, RELATIVE, parse_moment
from clickthru.params import BadParameter

T = TypeVar("T")
Word = TypeVar("Word", bound=str)


class Parameter(ABC, Generic[T]):
    """One query parameter of the API."""

    name: str
    description: str

    def read(self, query: QueryParams) -> T:
        """Its value in ``query``; raises BadParameter saying what it may be."""
        return self.parse(query.get(self.name))

    @abstractmethod
    def parse(self, text: str | None) -> T:
        """Its value from its text (None: not given)."""

    @abstractmethod
    def schema(self) -> dict[str, Any]:
        """Its values, as JSON Schema."""

    def described(self) -> dict[str, Any]:
        """As an OpenAPI parameter object."""
        return {
            "name": self.name,
            "in": "query",
            "description": self.description,
            "schema": self.schema(),
        }


@dataclass(frozen=True)
class Whole(Parameter[int | None]):
    """A whole number from ``low`` to ``high``, in ASCII digits (``params.integer``)."""

    name: str
    description: str
    low: int
    high: int
    default: int | None = None

    def parse(self, text: str | None) -> int | None:
        if text is None:
            return self.default
        return params.integer(text, self.name, self.low, self.high, 0)

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer", "minimum": self.low, "maximum": self.high}
        if self.default is not None:
            schema["default"] = self.default
        return schema


@dataclass(frozen=True)
class Choice(Parameter[Word]):
    """One of a few words."""

    name: str
    description: str
    choices: Sequence[Word]
    default: Word

    def parse(self, text: str | None) -> Word:
        if text is None:
            return self.default
        for choice in self.choices:
            if text == choice:
                return choice
        raise BadParameter(f"{self.name} is one of {', '.join(self.choices)}")

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.choices), "default": self.default}


@dataclass(frozen=True)
class Switch(Parameter[bool]):
    """On (``1``, ``true``) or off (``0``, ``false``, or empty: what a form's unticked box
    sends); off unless given."""

    name: str
    description: str

    ON = ("1", "true")
    OFF = ("0", "false", "")

    def parse(self, text: str | None) -> bool:
        value = text or ""
        if value not in (*self.ON, *self.OFF):
            raise BadParameter(f"{self.name} is 0 or 1")
        return value in self.ON

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": [*self.ON, *self.OFF], "default": "0"}


@dataclass(frozen=True)
class Moment(Parameter[int | None]):
    """A moment, unix ms (``clock.parse_moment``): an ISO date or time, or a span back from
    now. Empty (a form's empty field) is the default; ``None``: now."""

    name: str
    description: str
    default: str | None

    def parse(self, text: str | None) -> int | None:
        text = text or self.default
        if text is None:
            return None
        try:
            return parse_moment(text)
        except ValueError as error:
            raise BadParameter(str(error)) from None

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "string",
            # What parse_moment reads; it refuses also what no calendar has (2024-13-01)
            # and moments outside the range.
            "pattern": f"^(?:{RELATIVE.pattern}|{ISO_MOMENT.pattern}|)$",
            "examples": ["7d", "24h", "30m", "2024-11-28", "2024-11-28T10:00Z"],
        }
        if self.default is not None:
            schema["default"] = self.default
        return schema


@dataclass(frozen=True)
class Names(Parameter[list[str]]):
    """Names, the parameter repeated (``site=a&site=b``)."""

    name: str
    description: str

    def read(self, query: QueryParams) -> list[str]:
        return query.getlist(self.name)

    def parse(self, text: str | None) -> list[str]:
        return [] if text is None else [text]

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "items": {"type": "string"}}

    def described(self) -> dict[str, Any]:
        return {**super().described(), "style": "form", "explode": True}


MOMENTS = (
    f"An ISO date or time (UTC unless it says: 2024-11-28, 2024-11-28T10:00Z, …+05:30)"
    f" {MOMENT_RANGE}, or a span back from now (30m, 24h, 7d)"
)


@dataclass(frozen=True)
class Text(Parameter[str | None]):
    """Any text of 1 to ``longest`` characters, or nothing."""

    name: str
    description: str
    longest: int = 200

    def parse(self, text: str | None) -> str | None:
        if text is not None and not 1 <= len(text) <= self.longest:
            raise BadParameter(f"{self.name} must be 1 to {self.longest} characters")
        return text

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "minLength": 1, "maxLength": self.longest}
