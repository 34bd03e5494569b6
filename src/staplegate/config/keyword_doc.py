"""The keyword tables of docs/reference/keywords.md, rendered from the parser's registry.

The registry is the one place a keyword's class lives (supported, ignored with a reason,
refused); the page is generated from it so the documentation cannot drift from what `-c`
says. Regenerate with `python -m staplegate.config.keyword_doc > docs/reference/keywords.md`;
a test fails while the page is stale.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from typing import Any

from staplegate.config.crtlist import CRT_LIST_OPTIONS
from staplegate.config.parser.bind import BIND_OPTIONS
from staplegate.config.parser.crt_store import CRT_STORE
from staplegate.config.parser.dispatch import SECTIONS
from staplegate.config.parser.global_section import GLOBAL
from staplegate.config.parser.proxies import PROXY
from staplegate.config.parser.registry import (
    Keyword,
    KeywordClass,
    KeywordTable,
    refused_message,
    supported,
)
from staplegate.config.parser.rules import HTTP_REQUEST_ACTIONS, HTTP_RESPONSE_ACTIONS
from staplegate.config.parser.server import SERVER_OPTIONS

_HEAD = """\
# Keyword reference: what staplegate does with each HAProxy keyword

Generated from the configuration parser's registry by
`python -m staplegate.config.keyword_doc` (a test fails when this page is stale). Every
keyword staplegate knows is in exactly one class:

* **supported**: read and applied; its semantics and any difference from HAProxy are in
  [configuration.md](configuration.md).
* **ignored**: accepted with a `[WARNING]` because it changes nothing on the wire; the note
  says why.
* **refused**: an `[ALERT]` naming file:line, and the configuration does not start.
  Out-of-scope families (Lua, SPOE, stick tables, DNS resolvers) point to
  `staplegate sidecar`, which staples for an HAProxy kept for them.

A keyword missing from these tables is unknown: an `[ALERT]` naming the closest known one.
"""

_SCOPE = re.compile(r"out of staplegate's scope \(([^)]*)\)")


def _tables() -> Iterator[tuple[str, str, KeywordTable[Any]]]:
    yield "Sections", "The keyword that opens a section.", SECTIONS
    yield "`global`", "", GLOBAL
    yield (
        "`defaults`, `frontend`, `backend`, `listen`",
        "Which of the four sections accept each one is in configuration.md.",
        PROXY,
    )
    yield "`http-request` actions", "The word after `http-request`.", HTTP_REQUEST_ACTIONS
    response: KeywordTable[Any] = KeywordTable(supported(n) for n in HTTP_RESPONSE_ACTIONS)
    yield (
        "`http-response` and `http-after-response` actions",
        "The word after `http-response` or `http-after-response`; any other is refused.",
        response,
    )
    yield "`bind` options", "Words after a `bind` address.", BIND_OPTIONS
    yield "`server` and `default-server` options", "Words after a server address.", SERVER_OPTIONS
    yield "crt-list options", "Words in the `[…]` of a crt-list line.", CRT_LIST_OPTIONS
    yield "`crt-store` keywords", "", CRT_STORE


def _note(entry: Keyword[Any]) -> str:
    if entry.kind is KeywordClass.IGNORED:
        note = entry.reason or "it does not change traffic"
        if entry.refused_values:
            refused = ", ".join(f"`{v}`" for v in sorted(entry.refused_values))
            note += f"; refused with the values {refused}"
        return note
    if entry.kind is KeywordClass.REFUSED:
        scope = _SCOPE.search(refused_message(entry.name))
        if scope is not None:
            return f"out of scope ({scope.group(1)}): see `staplegate sidecar`"
    return ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render() -> str:
    """The whole page."""
    out = [_HEAD]
    counts = {kind: 0 for kind in KeywordClass}
    sections = []
    for title, intro, table in _tables():
        rows = sorted(table, key=lambda e: e.name)
        lines = [f"\n## {title}\n"]
        if intro:
            lines.append(f"\n{intro}\n")
        lines.append("\n| keyword | class | note |\n|---|---|---|\n")
        for entry in rows:
            counts[entry.kind] += 1
            lines.append(
                f"| `{_cell(entry.name)}` | {entry.kind.value} | {_cell(_note(entry))} |\n"
            )
        sections.append("".join(lines))
    total = sum(counts.values())
    out.append(
        f"\n{total} entries: {counts[KeywordClass.SUPPORTED]} supported, "
        f"{counts[KeywordClass.IGNORED]} ignored, {counts[KeywordClass.REFUSED]} refused.\n"
    )
    out.extend(sections)
    return "".join(out)


if __name__ == "__main__":
    sys.stdout.write(render())
