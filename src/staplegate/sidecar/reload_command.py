"""Run the operator's reload command once per batch of staple-file changes.

Theory of operation. nginx (and HAProxy before its runtime API can take a staple) only reads a
staple file at start or reload, so after the sidecar rewrites files someone must run
`nginx -s reload` or `systemctl reload haproxy`. Running it once per file would reload a
server with 2,000 certificates 2,000 times in a row, and a command that hangs or fails must
not stop the files from being kept fresh. So:

- `request()` only notes that something changed and returns at once: the delivery that wrote
  the file never waits for the command.
- One task owns the command. It waits until no change came for `debounce` seconds (a batch),
  and at least `min_interval` seconds after the previous run started (a rate limit), then
  runs the command once for every change noted so far. Changes that arrive while it runs are
  the next batch.
- The command runs under `/bin/sh -c` in its own process group, with stdin closed and its
  output (stdout and stderr together) in an unnamed temporary file, so a daemon it starts
  cannot hold a pipe open. After `timeout` seconds the whole group is killed and the run
  counts as a failure.
- A failure is logged on one line (exit status or signal, and the tail of the output) and
  the batch is retried after `retry_initial` seconds, doubling up to `retry_max`; changes
  that arrive meanwhile join the retry. The first success resets the backoff.

Times come from `monotonic` (injectable) and waits from asyncio, so tests run it with real
subprocesses and intervals of a few hundredths of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

logger = logging.getLogger("staplegate.sidecar")

#: How much of the command's output a failure line quotes (its end, where errors usually are).
OUTPUT_TAIL = 200


@dataclass(frozen=True)
class ReloadSettings:
    """How often and how long the reload command may run (seconds)."""

    debounce: float = 2.0
    min_interval: float = 10.0
    timeout: float = 60.0
    retry_initial: float = 5.0
    retry_max: float = 300.0

    def __post_init__(self) -> None:
        for name in ("debounce", "min_interval", "retry_initial", "retry_max"):
            if getattr(self, name) < 0:
                raise ValueError(f"reload {name} must not be negative")
        if self.timeout <= 0:
            raise ValueError("reload timeout must be positive")


@dataclass(frozen=True)
class ReloadResult:
    """One run of the command: whether it worked, and the one line that was logged."""

    ok: bool
    changes: int
    detail: str
    duration: float


class ReloadCommand:
    """The operator's reload command, debounced, rate-limited, timed out and retried.

    Use it as an async context manager, or call `start()` on a running loop and `close()`
    at the end.
    """

    def __init__(
        self,
        command: str,
        *,
        settings: ReloadSettings | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not command.strip():
            raise ValueError("the reload command is empty")
        self.command = command
        self.settings = settings or ReloadSettings()
        self._monotonic = monotonic
        self._pending = 0
        self._last_change = 0.0
        self._last_start: float | None = None
        self._retry_at: float | None = None
        self._failures_in_row = 0
        self._closing = False
        self._closed = False
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.results: list[ReloadResult] = []

    # -- public ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the task that runs the command (on the running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run_forever(), name="reload-command"
            )

    def request(self, changes: int = 1) -> None:
        """Note `changes` changed files; the command runs after the batch settles."""
        if changes <= 0 or self._closed:
            return
        self.start()
        self._pending += changes
        self._last_change = self._monotonic()
        self._idle.clear()
        self._wake.set()

    @property
    def pending(self) -> int:
        """Changes not yet followed by a successful run."""
        return self._pending

    async def wait_idle(self) -> None:
        """Return once no change is waiting and the command is not running."""
        await self._idle.wait()

    async def close(self) -> None:
        """Stop: a pending batch runs now (skipping the debounce, the rate limit and any
        backoff, bounded by the timeout), then the task ends; a command already running
        is given its timeout to finish."""
        self._closed = True
        task, self._task = self._task, None
        if task is None:
            return
        self._closing = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._idle.wait()), self._close_bound())
        except TimeoutError:
            pass
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _close_bound(self) -> float:
        """Time for a running command and then the pending batch, each within its timeout."""
        return 2 * self.settings.timeout + 1.0

    async def __aenter__(self) -> ReloadCommand:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the task ---------------------------------------------------------------------------

    async def _run_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._pending:
                continue
            await self._wait_until_due()
            batch = self._pending
            result = await self._run_once(batch)
            self.results.append(result)
            if result.ok:
                self._pending -= batch
                self._failures_in_row = 0
                self._retry_at = None
            else:
                self._failures_in_row += 1
                self._retry_at = self._monotonic() + self._retry_delay(self._failures_in_row)
            if self._pending and not self._closing:
                self._wake.set()
            else:
                self._idle.set()

    def _retry_delay(self, failures_in_row: int) -> float:
        """retry_initial, doubled for each further failure in a row, at most retry_max."""
        settings = self.settings
        delay: float = settings.retry_initial * 2.0 ** (failures_in_row - 1)
        return min(delay, settings.retry_max)

    def _due_at(self) -> float:
        settings = self.settings
        if self._closing:
            return -math.inf
        due = self._last_change + settings.debounce
        if self._last_start is not None:
            due = max(due, self._last_start + settings.min_interval)
        if self._retry_at is not None:
            due = max(due, self._retry_at)
        return due

    async def _wait_until_due(self) -> None:
        """Sleep until the batch is due; a new change pushes the debounce deadline on."""
        while True:
            delay = self._due_at() - self._monotonic()
            if delay <= 0:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def _run_once(self, changes: int) -> ReloadResult:
        self._last_start = started = self._monotonic()
        try:
            ok, detail = await self._execute()
        except (OSError, RuntimeError) as exc:  # e.g. no file descriptor left: retried, not fatal
            ok, detail = False, f"cannot run it: {exc}"
        duration = self._monotonic() - started
        noun = "change" if changes == 1 else "changes"
        if ok:
            line = (
                f"reload command {self.command!r} succeeded in {duration:.2f}s ({changes} {noun})"
            )
            logger.info("%s", line)
        else:
            retry = self._retry_delay(self._failures_in_row + 1)
            line = (
                f"reload command {self.command!r} failed: {detail} "
                f"({changes} {noun} pending); retrying in {retry:g}s"
            )
            logger.warning("%s", line)
        return ReloadResult(ok=ok, changes=changes, detail=line, duration=duration)

    async def _execute(self) -> tuple[bool, str]:
        """Run the command once: (succeeded, what happened)."""
        with tempfile.TemporaryFile() as output:
            try:
                process = await asyncio.create_subprocess_shell(
                    self.command,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the command
                return False, f"cannot start it: {getattr(exc, 'strerror', None) or exc}"
            try:
                status = await asyncio.wait_for(process.wait(), timeout=self.settings.timeout)
            except TimeoutError:
                _kill_group(process.pid)
                await process.wait()
                return False, (f"no exit after {self.settings.timeout:g}s, killed{_tail(output)}")
            except asyncio.CancelledError:
                _kill_group(process.pid)
                with contextlib.suppress(ProcessLookupError):
                    await asyncio.shield(process.wait())
                raise
            if status == 0:
                return True, "exit status 0"
            if status < 0:
                return False, f"killed by signal {signal.Signals(-status).name}{_tail(output)}"
            return False, f"exit status {status}{_tail(output)}"


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _tail(stream: IO[bytes]) -> str:
    """`, output: '<last line(s)>'` from the command's output file, or nothing when empty."""
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(max(0, size - 4 * OUTPUT_TAIL))
    text = stream.read().decode("utf-8", "replace")
    text = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    if not text:
        return ""
    if len(text) > OUTPUT_TAIL:
        text = "…" + text[-OUTPUT_TAIL:]
    return f", output: {text!r}"
