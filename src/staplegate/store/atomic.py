"""Replace a file so that readers see the old bytes or the new bytes, never a mix.

The recipe: write a temporary file in the same directory (same file system, so the rename is
atomic), fsync it, rename it over the target, then fsync the directory so the rename itself
survives a power loss. Temporary files are named `.<target>.<random>.tmp`; a crash can leave
one behind, and readers must ignore such names.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

TEMPORARY_SUFFIX = ".tmp"


def temporary_prefix(target: Path) -> str:
    """The prefix of the temporary files written on the way to `target`."""
    return f".{target.name}."


def is_temporary_name(name: str) -> bool:
    """True for the names `write_atomically` gives its temporary files."""
    return name.startswith(".") and name.endswith(TEMPORARY_SUFFIX)


def fsync_directory(directory: Path) -> None:
    """Make a rename or unlink in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    """Replace `path` with `data` (file mode `mode`, umask not applied) in one atomic step."""
    fd, temporary = tempfile.mkstemp(
        prefix=temporary_prefix(path), suffix=TEMPORARY_SUFFIX, dir=path.parent
    )
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    fsync_directory(path.parent)


def write_sidecar_atomically(path: Path, der: bytes) -> None:
    """Write a `<cert>.ocsp` sidecar next to a certificate, for operators who opt in.

    HAProxy (and other tools) read these files; an OCSP response is public, so a new file is
    0644, and an existing file keeps its permission bits.
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o644
    write_atomically(path, der, mode=mode)
