"""docs/reference/keywords.md is the registry, rendered: it lists every keyword once, and it
is regenerated whenever a keyword changes class."""

from __future__ import annotations

from pathlib import Path

from staplegate.config import keywords
from staplegate.config.keyword_doc import render

PAGE = Path(__file__).resolve().parents[3] / "docs" / "reference" / "keywords.md"


def test_the_page_is_current() -> None:
    assert PAGE.read_text(encoding="utf-8") == render(), (
        "docs/reference/keywords.md is stale: run "
        "`python -m staplegate.config.keyword_doc > docs/reference/keywords.md`"
    )


def test_every_proxy_keyword_appears_with_its_class() -> None:
    page = render()
    for name in keywords.PROXY_SUPPORTED:
        assert f"| `{name.replace('|', chr(92) + '|')}` | supported |" in page
    for name in keywords.PROXY_REFUSED:
        assert f"| `{name}` | refused |" in page
    for name, reason in keywords.PROXY_IGNORED.items():
        assert f"| `{name}` | ignored | {reason.replace('|', chr(92) + '|')}" in page


def test_out_of_scope_families_point_to_the_sidecar() -> None:
    page = render()
    assert "| `lua-load` | refused | out of scope (Lua): see `staplegate sidecar` |" in page
    assert "| `stick-table` | refused | out of scope (stick tables)" in page
