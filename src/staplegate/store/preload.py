"""Read the state directory in a child process while the master loads its certificates.

Theory of operation. With 50,000 stored staples, `FileStapleStore.scan` takes ~6 s (reading
the files, parsing each name's CertId and each response's structure), and it used to start
only after every certificate was loaded and the workers were serving: ~6 s of the time during
which workers had no staple. The scan depends only on the directory, not on the
configuration, so `app.run` starts it first, in a child forked before the configuration is
read (the child holds no socket yet), and the master loads certificates on its own core
meanwhile. The child sends back the pickled `StoreScan` over a pipe, which a thread of the
master drains at once (so the child never blocks on a full pipe), and exits.

The result is only what a scan in-process returns: unverified bytes keyed by CertId, and the
files skipped with their reasons. The updater verifies every staple before it installs it,
exactly as before; this changes where the reading happens, not what is trusted. The pipe
carries data from a process we forked ourselves, no more trusted or less than our own memory.

A child that fails (killed, an exception, a result that does not unpickle) costs nothing but
time: `result()` returns None and the store reads the directory again, in-process, where any
`StoreError` is raised as usual. `result()` must be called by the process that forked the
child, before it forks again to detach (`app.run` collects it before `_daemonize`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import threading
from collections.abc import Callable

from staplegate.store.filesystem import StoreScan

logger = logging.getLogger(__name__)


class BackgroundScan:
    """One scan running in a forked child; `result()` waits for it, `cancel()` stops it."""

    def __init__(self, scan: Callable[[], StoreScan]) -> None:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: scan, send, exit without running the parent's cleanup
            status = 1
            try:
                os.close(read_fd)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                data = pickle.dumps(scan(), protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(write_fd, "wb") as pipe:
                    pipe.write(data)
                status = 0
            finally:
                os._exit(status)
        os.close(write_fd)
        self._pid = pid
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(
            target=self._drain, args=(read_fd,), name="state-dir-preload", daemon=True
        )
        self._reader.start()
        self._done = False

    @property
    def pid(self) -> int:
        return self._pid

    def _drain(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as pipe:
            while chunk := pipe.read(1 << 20):
                self._chunks.append(chunk)

    def result(self) -> StoreScan | None:
        """The child's scan, waiting for it; None when the child failed (read again)."""
        if self._done:
            return None
        self._done = True
        self._reader.join()
        _, status = os.waitpid(self._pid, 0)
        data = b"".join(self._chunks)
        self._chunks.clear()
        if os.waitstatus_to_exitcode(status) != 0:
            logger.debug("state directory preload exited with status %d", status)
            return None
        try:
            scan = pickle.loads(data)  # our own forked child: see the docstring
        except Exception:
            logger.debug("state directory preload sent an unreadable result", exc_info=True)
            return None
        return scan if isinstance(scan, StoreScan) else None

    def cancel(self) -> None:
        """Stop the child (start-up is abandoned) and reap it."""
        if self._done:
            return
        self._done = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self._pid, 0)
        self._reader.join()
        self._chunks.clear()
