"""Tests mirror modules: every module has a test module of its name, and no test module
names a module that is gone (mitmproxy's test/filename_matching.py is the model).

`src/staplegate/<pkg>/<module>.py` is tested by `tests/<kind>/<pkg>/test_<module>.py`, where
<kind> is unit, integration or e2e (a leading underscore is dropped: `_openssl_compat.py` ->
`test_openssl_compat.py`). A module may also have companions `test_<module>_<aspect>.py` that
test one side of it at length (`test_server_limits.py`, `test_service_faults.py`,
`test_verify_fuzz.py`); a companion whose module is gone is stale like any other name.
"""

from __future__ import annotations

import re
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
PACKAGE = REPOSITORY / "src" / "staplegate"
TESTS = REPOSITORY / "tests"
KINDS = ("unit", "integration", "e2e")

# Modules without a test module of their name, each with the reason. Keep it short: a module
# with logic of its own gets its test module instead. A `tests/...` path named in a reason
# must exist (checked below), so an exception cannot outlive the test that stands in for it.
# `__init__.py` files are not listed: they hold package docstrings and re-exports, whose
# users' tests import them.
UNTESTED_BY_NAME: dict[str, str] = {
    "__main__.py": "`python -m staplegate`: two lines handing over to cli.main, which"
    " every e2e test runs (tests/e2e/test_cli_errors_e2e.py)",
    "process/worker.py": "a forked worker process's entry point (uvloop, signals, the"
    " staple pipe): tests/e2e/test_worker_exit_e2e.py, tests/e2e/test_staple_broadcast_e2e.py",
    "tools/demo.py": "`./dev demo`, a whole deployment with its own processes:"
    " tests/e2e/test_demo.py",
    "testpki/pytest_plugin.py": "the suite's own fixtures (`pki`), used by most test modules;"
    " the responder it starts has tests/integration/testpki/test_responder.py",
}

# Test directories that do not mirror src/staplegate, and why.
NOT_MIRRORS: dict[str, str] = {
    "e2e": "scenarios named for what a user does (a reload, a smuggling attempt), not modules",
    "unit/contrib": "tests the files shipped in contrib/ (the systemd unit), not Python modules",
}

# Fuzz companions (test_*_fuzz.py) need not name one module: each is named for what it fuzzes
# (test_http_reader_fuzz.py drives both HTTP readers, test_parser_fuzz.py the whole parser
# package) and runs the target of that name in tests/fuzz_targets/.
FUZZ_SUFFIX = "_fuzz.py"

# Directories mirroring a tree outside the package: test_<name>.py there tests <tree>/<name>.py.
OTHER_MIRRORS: dict[str, Path] = {"unit/bench": REPOSITORY / "bench"}


def source_modules() -> dict[str, str]:
    """Each module (path under src/staplegate) -> the test module name it calls for."""
    return {
        path.relative_to(PACKAGE).as_posix(): f"test_{path.stem.lstrip('_')}.py"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "__init__.py"
    }


def all_test_modules() -> list[Path]:
    return sorted(path for kind in KINDS for path in (TESTS / kind).rglob("test_*.py"))


def _mirrored(test: Path) -> tuple[str, str]:
    """A test module's (kind, package path) inside tests/: unit/tls/test_sni.py -> tls."""
    parts = test.relative_to(TESTS).parts
    return parts[0], "/".join(parts[1:-1])


def test_every_module_has_a_test_module_of_its_name() -> None:
    present = {
        (package, test.name) for test in all_test_modules() for _kind, package in [_mirrored(test)]
    }
    missing = []
    for module, wanted in source_modules().items():
        package = module.rpartition("/")[0]
        if (package, wanted) not in present and module not in UNTESTED_BY_NAME:
            expected = "/".join(filter(None, [package, wanted]))
            missing.append(f"{module}: no tests/{{unit,integration,e2e}}/{expected}")
    assert not missing, "\n".join(missing)


def _names_a_module(test: Path, modules: set[str]) -> bool:
    """Whether test_<name>.py is <name>'s test or a companion test_<module>_<aspect>.py."""
    name = test.stem.removeprefix("test_")
    return any(name == module or name.startswith(module + "_") for module in modules)


def test_no_test_module_names_a_module_that_is_gone() -> None:
    by_package: dict[str, set[str]] = {}
    for module in source_modules():
        package, _, file = module.rpartition("/")
        by_package.setdefault(package, set()).add(file.removesuffix(".py").lstrip("_"))
    for init in PACKAGE.rglob("__init__.py"):  # a package is a module of its parent too
        package, _, name = init.parent.relative_to(PACKAGE).as_posix().rpartition("/")
        by_package.setdefault(package, set()).add(name)
    stale = []
    for test in all_test_modules():
        kind, package = _mirrored(test)
        relative = test.relative_to(TESTS).as_posix()
        if any(relative.startswith(prefix + "/") for prefix in NOT_MIRRORS):
            continue
        if test.name.endswith(FUZZ_SUFFIX):
            continue
        tree = next((t for p, t in OTHER_MIRRORS.items() if relative.startswith(p + "/")), None)
        if tree is not None:
            if not (tree / f"{test.stem.removeprefix('test_')}.py").exists():
                stale.append(f"{relative}: no {tree.relative_to(REPOSITORY)}/ module of its name")
        elif not _names_a_module(test, by_package.get(package, set())):
            stale.append(f"{relative}: no module src/staplegate/{package} of its name ({kind})")
    assert not stale, "\n".join(stale)


def test_the_exceptions_are_current() -> None:
    modules = source_modules()
    gone = [module for module in UNTESTED_BY_NAME if module not in modules]
    assert not gone, f"no such module, delete from UNTESTED_BY_NAME: {gone}"
    named = [m for m in UNTESTED_BY_NAME if _has_test_of_its_name(m, modules[m])]
    assert not named, f"these have their test module now, delete from UNTESTED_BY_NAME: {named}"
    cited = {path for reason in UNTESTED_BY_NAME.values() for path in _cited_tests(reason)}
    assert all((REPOSITORY / path).is_file() for path in cited), sorted(cited)
    for directory in [*NOT_MIRRORS, *OTHER_MIRRORS]:
        assert (TESTS / directory).is_dir(), directory


def _has_test_of_its_name(module: str, wanted: str) -> bool:
    package = module.rpartition("/")[0]
    return any((TESTS / kind / package / wanted).exists() for kind in KINDS)


def _cited_tests(reason: str) -> list[str]:
    return re.findall(r"tests/[\w/]+\.py", reason)


def test_the_check_sees_what_it_should() -> None:
    # pin the rule on names we know, so a broken walk cannot pass by seeing nothing
    modules = source_modules()
    assert modules["tls/sni.py"] == "test_sni.py"
    assert modules["tls/_openssl_compat.py"] == "test_openssl_compat.py"
    assert "ocsp/__init__.py" not in modules
    assert _names_a_module(TESTS / "unit/ocsp/test_verify_fuzz.py", {"verify"})
    assert not _names_a_module(TESTS / "unit/ocsp/test_verifier.py", {"verify"})
    assert _cited_tests("see tests/e2e/test_demo.py and tests/x/test_y.py") == [
        "tests/e2e/test_demo.py",
        "tests/x/test_y.py",
    ]
