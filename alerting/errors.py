"""Error classes shared by every stage.

Every error a user can cause is an ``AlertingError`` whose ``str()`` is one line (or one
line per problem) naming the place and the fix, so the CLI can print it without a
traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class AlertingError(Exception):
    """Base class: an error the user can act on; its message is shown as is."""


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a file: 1-based line and column, either may be unknown."""

    path: str
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.path
        if self.col is None:
            return f"{self.path}:{self.line}"
        return f"{self.path}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Problem:
    """One located problem: ``file:line:col: message``."""

    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class ValidationFailed(AlertingError):
    """One or more problems in a user's file, reported together."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(
            problems,
            key=lambda p: (p.location.path, p.location.line or 0, p.location.col or 0),
        )
        super().__init__("\n".join(str(p) for p in self.problems))


class ConfigError(ValidationFailed):
    """The configuration file is invalid."""


class RuleError(ValidationFailed):
    """One or more rule files are invalid."""


class StoreError(AlertingError):
    """The state database cannot be used: its message names the file, the cause and the fix.

    ``cause`` is a short stable word for metrics and tests: ``disk_full``, ``read_only``,
    ``io_error``, ``locked``, ``corrupt``, ``newer_schema``, ``cannot_open`` or ``other``.
    """

    def __init__(self, message: str, cause: str = "other") -> None:
        super().__init__(message)
        self.cause = cause


class SourceError(AlertingError):
    """The event source failed in a way retrying will not fix (bad key, plan, request)."""


class EventError(AlertingError):
    """A single event is malformed; it is skipped with a warning, never fatal."""
