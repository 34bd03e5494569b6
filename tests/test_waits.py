"""No fixed-time sleep stands in for a readiness signal in the tests.

A test that sleeps "long enough" for something to be ready is slow when the guess is generous
and flaky when the machine is busy. Wait on the real thing instead: an Event, a `started`
signal, a manual or stepped clock, or a poll of the condition with a deadline. So a sleep of a
non-zero time must stand inside a loop (a poll, or a slow peer pacing its bytes), or say on its
line or the line above that the pause is the behaviour under test. `sleep(0)` is a scheduling
yield, not a wait, and is left alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
MARK = "behaviour under test"


def _is_sleep(node: ast.Call) -> bool:
    function = node.func
    return (
        isinstance(function, ast.Attribute)
        and function.attr == "sleep"
        and isinstance(function.value, ast.Name)
        and function.value.id in ("time", "asyncio")
    )


def _is_yield(node: ast.Call) -> bool:
    return bool(node.args) and isinstance(node.args[0], ast.Constant) and node.args[0].value == 0


def straight_line_sleeps(source: str) -> list[int]:
    """Lines of non-zero sleeps outside any loop and without the mark."""
    lines = source.splitlines()
    found: list[int] = []

    def visit(node: ast.AST, in_loop: bool) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            in_loop = False  # a function's body runs where it is called, not in the loop
        if isinstance(node, ast.Call) and _is_sleep(node) and not _is_yield(node) and not in_loop:
            nearby = lines[max(0, node.lineno - 2) : node.lineno]
            if not any(MARK in line for line in nearby):
                found.append(node.lineno)
        looping = in_loop or isinstance(node, ast.While | ast.For | ast.AsyncFor)
        for child in ast.iter_child_nodes(node):
            visit(child, looping)

    visit(ast.parse(source), False)
    return found


def test_no_test_sleeps_a_fixed_time_for_readiness() -> None:
    violations = [
        f"{path.relative_to(TESTS.parent)}:{line}"
        for path in sorted(TESTS.rglob("*.py"))
        for line in straight_line_sleeps(path.read_text(encoding="utf-8"))
    ]
    assert not violations, "\n".join(violations)


def test_the_check_tells_a_wait_from_a_poll_and_a_pace() -> None:
    source = (
        "import asyncio, time\n"
        "async def f(ready):\n"
        "    await asyncio.sleep(0.5)\n"  # 3: stands in for readiness
        "    await asyncio.sleep(0)\n"  # a yield
        "    while not ready():\n"
        "        await asyncio.sleep(0.01)\n"  # a poll
        "    time.sleep(0.2)  # a slow client: the behaviour under test\n"
        "    def later():\n"
        "        time.sleep(1)\n"  # 9: inside a function, not in the loop around it
        "    for _ in range(3):\n"
        "        later()\n"
    )
    assert straight_line_sleeps(source) == [3, 9]
