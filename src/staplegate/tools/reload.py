"""`staplegate reload`: ask a running master to reload its configuration (SIGUSR2).

The master's pid comes from `-p PIDFILE` (as written by `staplegate -p`) or is given directly.
The reload itself is asynchronous: its outcome is logged by the master (and, with a stats
socket, reported by the runtime API); a configuration with errors never replaces a working
one.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="staplegate reload", description=__doc__)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("-p", dest="pidfile", type=Path, help="the master's pidfile")
    target.add_argument("pid", nargs="?", type=int, help="the master's pid")
    args = parser.parse_args(list(argv))
    pid: int | None = args.pid
    if args.pidfile is not None:
        try:
            pid = int(args.pidfile.read_text(encoding="ascii").split()[0])
        except OSError as error:
            print(
                f"staplegate reload: cannot read the pidfile '{args.pidfile}': "
                f"{error.strerror or error}; is staplegate running with -p?",
                file=sys.stderr,
            )
            return 1
        except (ValueError, IndexError):
            print(
                f"staplegate reload: no pid in '{args.pidfile}' (expected the number "
                "`staplegate -p` writes)",
                file=sys.stderr,
            )
            return 1
    assert pid is not None
    try:
        os.kill(pid, signal.SIGUSR2)
    except ProcessLookupError:
        print(f"staplegate reload: no process {pid} (is staplegate running?)", file=sys.stderr)
        return 1
    except PermissionError:
        print(f"staplegate reload: not allowed to signal process {pid}", file=sys.stderr)
        return 1
    print(f"reload requested from process {pid}")
    return 0
