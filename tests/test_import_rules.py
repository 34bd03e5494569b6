"""The design's import rules, checked on the source tree (DESIGN.md, STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "staplegate"

# module prefix -> packages (relative to staplegate/) allowed to import it
RULES: dict[str, tuple[str, ...]] = {
    "OpenSSL.SSL": ("tls",),
    "aiohttp": ("fetch", "testpki/responder", "observe"),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_restricted_imports_stay_in_their_package() -> None:
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        for module in _imports(path):
            for restricted, allowed in RULES.items():
                restricted_here = module == restricted or module.startswith(restricted + ".")
                if restricted_here and not any(relative.startswith(p) for p in allowed):
                    violations.append(f"{relative} imports {module}")
    assert not violations, "\n".join(violations)


def test_ocsp_core_is_io_free() -> None:
    forbidden = {"socket", "asyncio", "aiohttp", "urllib.request", "http.client", "time"}
    violations = []
    for path in sorted((PACKAGE / "ocsp").rglob("*.py")):
        for module in _imports(path):
            if module.split(".")[0] in forbidden or module in forbidden:
                violations.append(f"{path.name} imports {module}")
    assert not violations, "\n".join(violations)
