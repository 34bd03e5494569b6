"""Run one function in a forked child of this process and take back its pickled result.

Theory of operation. Start-up has work that is CPU-bound, independent of what the master
does meanwhile, and too big for one core at 50,000 certificates (reading the state
directory, checking stored staples): `ForkedCall` runs it on the other core. The child is
a fork, so it sees the caller's objects as they were at the fork (certificates, machines)
without any of them being sent; it calls the function, pickles the result into a pipe and
leaves with `os._exit` (no atexit handlers, no buffered output flushed twice). A thread of
the parent drains the pipe at once, so the child never blocks on a full pipe while the
parent is busy.

In the child, the garbage collector is off (a full pass would touch, and so copy, every page
it shares with the parent), and the signals the master handles get their default action
back, with no wakeup fd: a SIGTERM to the process group ends the child instead of being
written into the master's event-loop pipe a second time.

The result crosses the pipe from a process of our own, running our code on our copy of the
data: it is no more trusted or less than our own memory, and never holds bytes the child
did not compute from that copy. A child that fails in any way (an exception, killed, a result
that does not unpickle) yields None: the caller does the work itself. `result()` must be
called by the process that forked the child (only it can reap it).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import pickle
import signal
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Signals whose handlers the child must not run (the master's), restored to their default.
_DEFAULT_IN_CHILD = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGCHLD,
)


class ForkedCall(Generic[T]):
    """`function()` running in a forked child; `result()` waits for it, `cancel()` stops it."""

    def __init__(self, function: Callable[[], T], *, name: str = "forked-call") -> None:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: compute, send, exit without running the parent's cleanup
            status = 1
            try:
                gc.disable()
                os.close(read_fd)
                with contextlib.suppress(ValueError):  # not the main thread: nothing to undo
                    signal.set_wakeup_fd(-1)
                    for signum in _DEFAULT_IN_CHILD:
                        signal.signal(signum, signal.SIG_DFL)
                data = pickle.dumps(function(), protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(write_fd, "wb") as pipe:
                    pipe.write(data)
                status = 0
            finally:
                os._exit(status)
        os.close(write_fd)
        self._pid = pid
        self._name = name
        self._chunks: list[bytes] = []
        self._done = False
        self._reader = threading.Thread(target=self._drain, args=(read_fd,), name=name, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._pid

    def _drain(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as pipe:
            while chunk := pipe.read(1 << 20):
                self._chunks.append(chunk)

    def result(self) -> T | None:
        """The child's result, waiting for it; None when the child failed (or was asked
        before)."""
        if self._done:
            return None
        self._done = True
        self._reader.join()
        _, status = os.waitpid(self._pid, 0)
        data = b"".join(self._chunks)
        self._chunks.clear()
        if os.waitstatus_to_exitcode(status) != 0:
            logger.debug("%s: the child exited with status %d", self._name, status)
            return None
        try:
            value: T = pickle.loads(data)  # our own forked child: see the module docstring
        except Exception:
            logger.debug("%s: the child's result does not unpickle", self._name, exc_info=True)
            return None
        return value

    def cancel(self) -> None:
        """Stop the child (its result is no longer wanted) and reap it."""
        if self._done:
            return
        self._done = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self._pid, 0)
        self._reader.join()
        self._chunks.clear()
