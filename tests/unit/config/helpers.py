"""Shared helpers for the config tests: parse text in memory, render diagnostics."""

from __future__ import annotations

from staplegate.config.diagnostics import Diagnostic, Severity
from staplegate.config.model import Config
from staplegate.config.parser.dispatch import parse_texts
from staplegate.config.semantic import build_config

BACKEND = "\nbackend app\n    server a1 127.0.0.1:9000\n"
A = "[ALERT] config : parsing [t.cfg:{}] : {}"
W = "[WARNING] config : parsing [t.cfg:{}] : {}"
#: what a refusal of an out-of-scope HAProxy feature adds (the family in braces)
SIDECAR = (
    "; this is out of staplegate's scope ({}): keep HAProxy for it and run 'staplegate "
    "sidecar' beside it for the stapling (docs/how-to/sidecar-haproxy.md)"
)


def check(text: str, env: dict[str, str] | None = None) -> tuple[Config | None, list[str]]:
    """Parse one in-memory file named t.cfg; return the config and str() of each diagnostic."""
    parsed = parse_texts([("t.cfg", text)], env=env or {})
    config, diagnostics = build_config(parsed)
    return config, [str(d) for d in diagnostics]


def diagnostics(text: str) -> tuple[Diagnostic, ...]:
    parsed = parse_texts([("t.cfg", text)], env={})
    return build_config(parsed)[1]


def errors(text: str) -> list[str]:
    return [str(d) for d in diagnostics(text) if d.severity is Severity.ERROR]


def warnings(text: str) -> list[str]:
    return [str(d) for d in diagnostics(text) if d.severity is Severity.WARNING]


def one_error(text: str) -> str:
    found = errors(text)
    assert len(found) == 1, found
    return found[0]
