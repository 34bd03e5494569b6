"""The reload command: batched, rate-limited, timed out, retried, never blocking the caller.

Real subprocesses (`true`, `false`, `sleep`, a shell counting its runs in a file) with
intervals of a few hundredths of a second.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from pathlib import Path

import pytest

from staplegate.sidecar.reload_command import ReloadCommand, ReloadSettings

FAST = ReloadSettings(debounce=0.05, min_interval=0.0, timeout=5.0, retry_initial=0.05)


def _count_runs(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_a_burst_of_changes_runs_the_command_once(tmp_path: Path) -> None:
    runs = tmp_path / "runs"

    async def scenario() -> ReloadCommand:
        async with ReloadCommand(f"echo run >> {runs}", settings=FAST) as reload:
            for _ in range(20):
                reload.request()
            await asyncio.wait_for(reload.wait_idle(), 5)
            return reload

    reload = asyncio.run(scenario())
    assert _count_runs(runs) == 1
    assert [(r.ok, r.changes) for r in reload.results] == [(True, 20)]
    assert reload.pending == 0


def test_request_returns_at_once_while_the_command_runs(tmp_path: Path) -> None:
    """A slow command never delays the delivery that notes a change."""
    started = tmp_path / "started"

    async def scenario() -> float:
        settings = ReloadSettings(debounce=0.0, min_interval=0.0, timeout=0.5)
        async with ReloadCommand(f"touch {started}; sleep 100", settings=settings) as reload:
            reload.request()
            while not started.exists():
                await asyncio.sleep(0.01)
            before = time.monotonic()
            reload.request()
            return time.monotonic() - before

    assert asyncio.run(scenario()) < 0.01


def test_changes_during_a_run_make_one_more_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    gate = tmp_path / "gate"

    async def scenario() -> ReloadCommand:
        # The first run waits for the gate file, so the next changes land while it runs.
        command = f"echo run >> {runs}; while [ ! -e {gate} ]; do sleep 0.01; done"
        async with ReloadCommand(command, settings=FAST) as reload:
            reload.request()
            while _count_runs(runs) < 1:
                await asyncio.sleep(0.01)
            reload.request(3)
            reload.request(2)
            gate.touch()
            await asyncio.wait_for(reload.wait_idle(), 5)
            return reload

    reload = asyncio.run(scenario())
    assert [(r.ok, r.changes) for r in reload.results] == [(True, 1), (True, 5)]
    assert _count_runs(runs) == 2


def test_runs_are_rate_limited_by_min_interval() -> None:
    async def scenario() -> list[float]:
        settings = ReloadSettings(debounce=0.0, min_interval=0.3, timeout=5.0)
        starts: list[float] = []
        async with ReloadCommand("true", settings=settings) as reload:
            for _ in range(3):
                reload.request()
                await asyncio.wait_for(reload.wait_idle(), 5)
                starts.append(time.monotonic())
        return starts

    starts = asyncio.run(scenario())
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    assert all(gap >= 0.29 for gap in gaps), gaps


def test_a_failing_command_is_logged_on_one_line_and_retried_with_backoff(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    attempts = tmp_path / "attempts"
    # Fails twice (printing why on stderr), then succeeds.
    command = (
        f"echo x >> {attempts}; n=$(wc -l < {attempts}); "
        'if [ "$n" -lt 3 ]; then echo "nginx: [emerg] bad thing" >&2; exit 3; fi'
    )

    async def scenario() -> ReloadCommand:
        async with ReloadCommand(command, settings=FAST) as reload:
            reload.request()
            await asyncio.wait_for(reload.wait_idle(), 10)
            return reload

    with caplog.at_level(logging.INFO, logger="staplegate.sidecar"):
        reload = asyncio.run(scenario())
    assert [r.ok for r in reload.results] == [False, False, True]
    failures = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(failures) == 2
    assert all("\n" not in line for line in failures)
    assert "exit status 3" in failures[0]
    assert "nginx: [emerg] bad thing" in failures[0]
    assert "retrying in 0.05s" in failures[0]
    assert "retrying in 0.1s" in failures[1]  # doubled
    assert reload.pending == 0


def test_backoff_is_capped_at_retry_max() -> None:
    settings = ReloadSettings(retry_initial=5, retry_max=30)
    reload = ReloadCommand("true", settings=settings)
    assert [reload._retry_delay(n) for n in range(1, 6)] == [5, 10, 20, 30, 30]


def test_a_hanging_command_is_killed_with_its_children_and_counted_as_a_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pid_file = tmp_path / "child.pid"

    async def scenario() -> ReloadCommand:
        settings = ReloadSettings(debounce=0.0, timeout=0.3, retry_initial=60)
        command = f"sleep 100 & echo $! >> {pid_file}; wait"
        async with ReloadCommand(command, settings=settings) as reload:
            reload.request()
            while not reload.results:
                await asyncio.sleep(0.02)
            return reload

    with caplog.at_level(logging.INFO, logger="staplegate.sidecar"):
        reload = asyncio.run(scenario())
    assert not reload.results[0].ok
    assert "no exit after 0.3s, killed" in reload.results[0].detail
    assert reload.pending == 1  # still owed a reload: retried after the backoff
    for child in map(int, pid_file.read_text().split()):
        _wait_gone(child)


def _wait_gone(pid: int) -> None:
    """SIGKILL is delivered asynchronously: give the process a moment to be gone (or a zombie)."""
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and not _is_zombie(pid):
        assert time.monotonic() < deadline, f"process {pid} survived the kill"
        time.sleep(0.01)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


def test_a_command_killed_by_a_signal_says_which() -> None:
    async def scenario() -> ReloadCommand:
        async with ReloadCommand("kill -TERM $$", settings=FAST) as reload:
            reload.request()
            while not reload.results:
                await asyncio.sleep(0.01)
            return reload

    reload = asyncio.run(scenario())
    assert "killed by signal SIGTERM" in reload.results[0].detail


def test_a_missing_program_reports_the_shell_message() -> None:
    async def scenario() -> ReloadCommand:
        async with ReloadCommand("/nonexistent/reload-me", settings=FAST) as reload:
            reload.request()
            while not reload.results:
                await asyncio.sleep(0.01)
            return reload

    detail = asyncio.run(scenario()).results[0].detail
    assert "exit status 127" in detail
    assert "/nonexistent/reload-me" in detail


def test_close_gives_a_running_command_its_timeout_then_kills_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"

    async def scenario() -> None:
        settings = ReloadSettings(debounce=0.0, timeout=0.3)
        reload = ReloadCommand(f"echo $$ > {pid_file}; exec sleep 100", settings=settings)
        reload.request()
        while not pid_file.exists() or not pid_file.read_text().strip():
            await asyncio.sleep(0.01)
        await asyncio.wait_for(reload.close(), 5)

    asyncio.run(scenario())
    _wait_gone(int(pid_file.read_text()))


def test_close_runs_a_pending_batch_at_once(tmp_path: Path) -> None:
    """Stopping the sidecar right after writing files still reloads the server once."""
    runs = tmp_path / "runs"

    async def scenario() -> ReloadCommand:
        settings = ReloadSettings(debounce=60.0, min_interval=60.0, timeout=5.0)
        reload = ReloadCommand(f"echo run >> {runs}", settings=settings)
        reload.request()
        await asyncio.sleep(0)
        await asyncio.wait_for(reload.close(), 5)
        return reload

    reload = asyncio.run(scenario())
    assert _count_runs(runs) == 1
    assert reload.pending == 0


def test_close_without_any_request_returns_at_once() -> None:
    async def scenario() -> None:
        reload = ReloadCommand("true")
        await asyncio.wait_for(reload.close(), 1)

    asyncio.run(scenario())


@pytest.mark.parametrize("command", ["", "   "])
def test_an_empty_command_is_refused(command: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        ReloadCommand(command)


def test_settings_refuse_negative_or_zero_times() -> None:
    with pytest.raises(ValueError, match="debounce"):
        ReloadSettings(debounce=-1)
    with pytest.raises(ValueError, match="timeout"):
        ReloadSettings(timeout=0)


def test_a_change_inside_the_debounce_window_pushes_the_run_back(tmp_path: Path) -> None:
    stamp = tmp_path / "ran"

    async def scenario() -> tuple[float, float]:
        settings = ReloadSettings(debounce=0.2, min_interval=0.0, timeout=5.0)
        async with ReloadCommand(f"touch {stamp}", settings=settings) as reload:
            first = time.monotonic()
            reload.request()
            await asyncio.sleep(0.1)  # behaviour under test: a second change mid-window
            reload.request()
            await asyncio.wait_for(reload.wait_idle(), 5)
            return first, stamp.stat().st_mtime - (time.time() - time.monotonic())

    first, ran = asyncio.run(scenario())
    assert ran - first >= 0.29


def test_a_command_that_cannot_start_is_a_logged_failure_not_a_dead_task() -> None:
    async def scenario() -> ReloadCommand:
        async with ReloadCommand("echo a\x00b", settings=FAST) as reload:
            reload.request()
            while not reload.results:
                await asyncio.sleep(0.01)
            return reload

    reload = asyncio.run(scenario())
    assert "cannot start it" in reload.results[0].detail
    assert "null byte" in reload.results[0].detail


def test_requests_after_close_are_ignored(tmp_path: Path) -> None:
    runs = tmp_path / "runs"

    async def scenario() -> None:
        reload = ReloadCommand(f"echo run >> {runs}", settings=FAST)
        await reload.close()
        reload.request()
        await asyncio.sleep(0.2)  # behaviour under test: nothing may run after close

    asyncio.run(scenario())
    assert not runs.exists()
