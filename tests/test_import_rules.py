"""The design's import rules, checked on the source tree (DESIGN.md, STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "staplegate"

# module prefix -> packages (relative to staplegate/) allowed to import it
RULES: dict[str, tuple[str, ...]] = {
    "OpenSSL.SSL": ("tls",),
    "aiohttp": ("fetch", "testpki/responder", "observe"),
    "redis": ("fleet/redis_share",),  # the only code talking to the fleet's Redis
    "passlib": ("config/passwords",),  # userlist password hashes (libpass)
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


def test_crl_core_is_io_free_and_self_contained() -> None:
    """crl/ is sans-IO like ocsp/: no sockets, files, clock or HTTP, and nothing of ours
    outside itself (the updater and the tools hand it bytes, certificates and `now`)."""
    forbidden = {"socket", "asyncio", "aiohttp", "urllib", "http", "time", "os", "pathlib"}
    violations = []
    for path in sorted((PACKAGE / "crl").rglob("*.py")):
        for module in _imports(path):
            top = module.split(".")[0]
            if top in forbidden:
                violations.append(f"{path.name} imports {module}")
            if top == "staplegate" and not module.startswith("staplegate.crl"):
                violations.append(f"{path.name} imports {module}")
            if module.startswith("staplegate.clock"):
                violations.append(f"{path.name} reads the clock through {module}")
        source = path.read_text(encoding="utf-8")
        for call in ("open(", ".now(", ".today(", "read_bytes(", "utcnow("):
            if call in source:
                violations.append(f"{path.name} calls {call}")
    assert (PACKAGE / "crl" / "verify.py").exists()
    assert not violations, "\n".join(violations)


def test_ocsp_core_is_io_free() -> None:
    forbidden = {"socket", "asyncio", "aiohttp", "urllib.request", "http.client", "time"}
    violations = []
    for path in sorted((PACKAGE / "ocsp").rglob("*.py")):
        for module in _imports(path):
            if module.split(".")[0] in forbidden or module in forbidden:
                violations.append(f"{path.name} imports {module}")
    assert not violations, "\n".join(violations)


# --- the module graph -----------------------------------------------------------------------

SRC = PACKAGE.parent
OUR = PACKAGE.name


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _absolute(node: ast.ImportFrom, importer: str) -> str:
    """The module a `from ... import` names, with relative imports resolved."""
    if not node.level:
        return node.module or ""
    is_package = MODULES[importer].name == "__init__.py"
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def our_imports(module: str) -> set[str]:
    """Every module of ours `module` imports, wherever the import statement stands (inside a
    function, under TYPE_CHECKING): `from pkg import name` is an import of `pkg.name` when
    that is a module, else of `pkg` itself (its `__init__.py`, which may re-export)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, module)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in MODULES:
                    found.add(submodule)
                elif source in MODULES:
                    found.add(source)
    found.discard(module)
    return found


def import_graph(ignored: frozenset[tuple[str, str]] = frozenset()) -> dict[str, set[str]]:
    return {
        module: {target for target in our_imports(module) if (module, target) not in ignored}
        for module in MODULES
    }


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


# Imports allowed to close a cycle: none. Keep it empty; break a cycle with a module both
# sides import one way (proxy/records.py) or a Protocol, never by an entry here.
KNOWN_CYCLE_EDGES: frozenset[tuple[str, str]] = frozenset()


def test_no_import_cycles() -> None:
    cycles = import_cycles(import_graph(KNOWN_CYCLE_EDGES))
    assert not cycles, "\n".join(" <-> ".join(cycle) for cycle in cycles)


def test_every_known_cycle_edge_is_still_an_import() -> None:
    # a stale entry would hide a future cycle through the same two modules: delete it
    stale = [edge for edge in KNOWN_CYCLE_EDGES if edge[1] not in our_imports(edge[0])]
    assert not stale, stale


def test_the_cycle_finder_counts_imports_inside_functions_and_package_reexports() -> None:
    # the guard above is only as good as the graph: pin what it sees on modules we know
    assert "staplegate.tools.check" in our_imports("staplegate.cli")  # inside a function
    assert "staplegate.certs" in our_imports("staplegate.process.runtime_view")  # re-export
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# --- what each package may reach --------------------------------------------------------------


# Imports out of ocsp/ that exist today: none since the User-Agent is fetch.client's and is
# handed to the request builder (issue 15).
KNOWN_OCSP_REACHES: frozenset[tuple[str, str]] = frozenset()


def _in_ocsp(module: str) -> bool:
    return module == f"{OUR}.ocsp" or module.startswith(f"{OUR}.ocsp.")


def test_ocsp_imports_nothing_of_ours_outside_itself() -> None:
    reaches = {
        (module, target)
        for module in MODULES
        if _in_ocsp(module)
        for target in our_imports(module)
        if not _in_ocsp(target)
    }
    violations = sorted(reaches - KNOWN_OCSP_REACHES)
    assert not violations, "\n".join(f"{m} imports {t}" for m, t in violations)
    stale = sorted(KNOWN_OCSP_REACHES - reaches)
    assert not stale, f"no longer imported, delete from KNOWN_OCSP_REACHES: {stale}"


#: calls that read a clock; the OCSP core is handed `now` instead
CLOCK_READS = frozenset({"now", "utcnow", "today", "time", "monotonic", "perf_counter", "time_ns"})


def test_ocsp_reads_no_clock() -> None:
    violations = []
    for path in sorted((PACKAGE / "ocsp").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else None
            if isinstance(function, ast.Name):
                name = function.id
            if name in CLOCK_READS:
                violations.append(f"{path.name}:{node.lineno} calls {name}()")
    assert not violations, "\n".join(violations)


#: where aiohttp's HTTP client may be used: the responder fetcher, and the test responder
HTTP_CLIENT_ALLOWED = ("fetch/", "testpki/responder")


def _uses_aiohttp_client(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aiohttp"):
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if alias.name.startswith("aiohttp.")]
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "aiohttp"
        ):
            names = [f"aiohttp.{node.attr}"]
        for name in names:
            last = name.rsplit(".", 1)[-1]
            client_module = name.startswith(("aiohttp.client", "aiohttp.connector"))
            if client_module or last.startswith("Client") or last in ("TCPConnector", "request"):
                found.append(
                    f"{path.relative_to(PACKAGE).as_posix()}:{getattr(node, 'lineno', 0)} {name}"
                )
    return found


def test_only_fetch_uses_the_http_client() -> None:
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if not path.relative_to(PACKAGE).as_posix().startswith(HTTP_CLIENT_ALLOWED):
            violations.extend(_uses_aiohttp_client(path))
    assert not violations, "\n".join(violations)
    assert _uses_aiohttp_client(PACKAGE / "fetch" / "client.py"), "the check sees nothing"


#: the top level: the composition root, the command line, the clock; everything else in a room
TOP_LEVEL_FILES = frozenset({"app.py", "cli.py", "clock.py", "__init__.py", "__main__.py"})


def test_the_top_level_holds_only_the_composition_root_and_packages() -> None:
    loose = sorted(
        path.name
        for path in PACKAGE.iterdir()
        if path.is_file()
        and path.name not in TOP_LEVEL_FILES
        and path.name != "py.typed"  # PEP 561's marker, not a module
    )
    assert not loose, f"modules outside a package: {loose}"
    packages = [p for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"]
    assert all((p / "__init__.py").exists() for p in packages)
