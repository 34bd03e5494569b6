"""Read the state directory in a child process while the master loads its certificates.

Theory of operation. With 50,000 stored staples, `FileStapleStore.scan` takes ~2.5-6 s
(reading the files, parsing each name's CertId and each response's structure), and it used to
start only after every certificate was loaded and the workers were serving: seconds during
which workers had no staple. The scan depends only on the directory, not on the
configuration, so `app.run` starts it first, in a child forked before the configuration is
read (`process.forked.ForkedCall`; the child holds no socket yet), and the master loads
certificates on its own core meanwhile.

The result is only what a scan in-process returns: unverified bytes keyed by CertId, and the
files skipped with their reasons. The updater verifies every staple before it installs it,
exactly as before; this changes where the reading happens, not what is trusted.

A child that fails costs nothing but time: `result()` returns None and the store reads the
directory again, in-process, where any `StoreError` is raised as usual. `result()` must be
called by the process that forked the child, before it forks again to detach (`app.run`
collects it before `_daemonize`).
"""

from __future__ import annotations

from collections.abc import Callable

from staplegate.process.forked import ForkedCall
from staplegate.store.filesystem import StoreScan


class BackgroundScan:
    """One scan running in a forked child; `result()` waits for it, `cancel()` stops it."""

    def __init__(self, scan: Callable[[], StoreScan]) -> None:
        self._call = ForkedCall(scan, name="state-dir-preload")

    @property
    def pid(self) -> int:
        return self._call.pid

    def result(self) -> StoreScan | None:
        """The child's scan, waiting for it; None when the child failed (read again)."""
        scan = self._call.result()
        return scan if isinstance(scan, StoreScan) else None

    def cancel(self) -> None:
        """Stop the child (start-up is abandoned) and reap it."""
        self._call.cancel()
