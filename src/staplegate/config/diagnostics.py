"""Configuration diagnostics: one HAProxy-style line per problem, all collected, never raised.

HAProxy prints `[ALERT]    (PID) : config : parsing [file:line] : message`; we print the same
shape without the pid so that operators' greps and eyes keep working.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.Enum):
    """How bad a diagnostic is; the value is HAProxy's label for it."""

    ERROR = "ALERT"
    WARNING = "WARNING"
    INFO = "NOTICE"


class Reason(enum.Enum):
    """Why a diagnostic was produced, so callers and tests need not match on text."""

    SYNTAX = "syntax"
    UNKNOWN_KEYWORD = "unknown-keyword"
    UNSUPPORTED = "unsupported"
    IGNORED = "ignored"
    INVALID_VALUE = "invalid-value"
    MISSING_ARGUMENT = "missing-argument"
    CONFLICT = "conflict"
    MISSING_REFERENCE = "missing-reference"
    DUPLICATE = "duplicate"
    IO = "io"
    QUIRK = "haproxy-quirk"


@dataclass(frozen=True)
class SourceLocation:
    """A file and a 1-based line number; line 0 means "the file as a whole"."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in the configuration, with where it is and what to do."""

    severity: Severity
    file: str
    line: int
    keyword: str
    message: str
    reason: Reason = Reason.SYNTAX

    @property
    def location(self) -> SourceLocation:
        return SourceLocation(self.file, self.line)

    def __str__(self) -> str:
        if self.line <= 0:
            return f"[{self.severity.value}] config : {self.message}"
        return (
            f"[{self.severity.value}] config : parsing [{self.file}:{self.line}] : {self.message}"
        )


class DiagnosticSink:
    """Collects diagnostics in the order they are found (the parser's only mutable helper)."""

    def __init__(self) -> None:
        self._items: list[Diagnostic] = []

    def add(self, diagnostic: Diagnostic) -> None:
        self._items.append(diagnostic)

    def extend(self, diagnostics: tuple[Diagnostic, ...] | list[Diagnostic]) -> None:
        self._items.extend(diagnostics)

    def error(
        self,
        where: SourceLocation,
        keyword: str,
        message: str,
        reason: Reason = Reason.INVALID_VALUE,
    ) -> None:
        self._items.append(
            Diagnostic(Severity.ERROR, where.file, where.line, keyword, message, reason)
        )

    def warning(
        self,
        where: SourceLocation,
        keyword: str,
        message: str,
        reason: Reason = Reason.IGNORED,
    ) -> None:
        self._items.append(
            Diagnostic(Severity.WARNING, where.file, where.line, keyword, message, reason)
        )

    @property
    def has_errors(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self._items)

    def snapshot(self) -> tuple[Diagnostic, ...]:
        return tuple(self._items)
