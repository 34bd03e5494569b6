"""The `staplegate` command: HAProxy-style flags for the proxy, subcommands for the rest.

`staplegate -f haproxy.cfg [-c] [-V]` behaves like `haproxy`; words such as `ca` or
`responder` in first position select a subcommand whose module owns its own arguments.
Subcommands are imported lazily so `staplegate -c` never pays for the test PKI.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Sequence

from staplegate import __version__
from staplegate.clock import CLOCK_OFFSET_VARIABLE, ClockOffsetError, clock_offset_seconds

# subcommand -> module exposing `main(argv: list[str]) -> int`
SUBCOMMANDS: dict[str, str] = {
    "ca": "staplegate.testpki.ca_cli",
    "responder": "staplegate.testpki.responder_cli",
    "reload": "staplegate.tools.reload",
    "ocsp": "staplegate.tools.ocsp",
    "crl": "staplegate.tools.crl",
    "ctl": "staplegate.tools.ctl",
    "sidecar": "staplegate.sidecar.command",
}

_ACTION_WORD = re.compile(r"[a-z][a-z-]*")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="staplegate",
        description="OCSP-stapling TLS front end configured in HAProxy's syntax.",
        epilog="subcommands: " + ", ".join(sorted(SUBCOMMANDS)) + " (staplegate SUBCOMMAND -h)",
    )
    parser.add_argument(
        "-f",
        dest="config_paths",
        action="append",
        metavar="FILE",
        default=[],
        help="configuration file or directory (repeatable; a directory loads its *.cfg in order)",
    )
    parser.add_argument(
        "-c", dest="check_only", action="store_true", help="check the configuration and exit"
    )
    parser.add_argument(
        "-V", dest="verbose", action="store_true", help="verbose: with -c, list certificates"
    )
    parser.add_argument(
        "-v", "--version", action="version", version=f"staplegate version {__version__}"
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where fetched staples persist (default: $STATE_DIRECTORY, /var/lib/staplegate "
        "as root, else ~/.local/state/staplegate)",
    )
    parser.add_argument(
        "--workers", type=int, metavar="N", help="worker processes (default: nbthread or CPUs)"
    )
    parser.add_argument(
        "-db", dest="foreground", action="store_true", help="stay in the foreground (default)"
    )
    parser.add_argument(
        "-W", dest="master_worker", action="store_true", help="master-worker mode (always on)"
    )
    parser.add_argument("-p", dest="pidfile", metavar="PIDFILE", help="write the master's pid")
    parser.add_argument("-D", dest="daemon", action="store_true", help="run in the background")
    parser.add_argument("-sf", dest="soft_finish", nargs="+", metavar="PID", help=argparse.SUPPRESS)
    parser.add_argument("-st", dest="hard_finish", nargs="+", metavar="PID", help=argparse.SUPPRESS)
    return parser


def describe_os_error(error: OSError) -> str:
    """`'PATH': reason` for a failed file or socket operation, as a user reads it.

    No errno number and no traceback: the path and the system's reason are what tell the
    user what to fix.
    """
    reason = error.strerror or str(error) or type(error).__name__
    paths = [os.fsdecode(p) for p in (error.filename, error.filename2) if p is not None]
    if not paths:
        return reason
    return " -> ".join(f"'{path}'" for path in paths) + f": {reason}"


def _command_name(args_list: Sequence[str]) -> str:
    """`staplegate ca init` for `ca init DIR`: the words a user typed before the first option."""
    words = ["staplegate"]
    if args_list and args_list[0] in SUBCOMMANDS:
        words.append(args_list[0])
        if len(args_list) > 1 and _ACTION_WORD.fullmatch(args_list[1]):
            words.append(args_list[1])  # `init`, `ocsp-signer`, `fetch`: not a path or option
    return " ".join(words)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `staplegate ARGV`; a file or socket that cannot be used is one line, never a traceback.

    Every subcommand reports its own refusals; an `OSError` that still escapes one (a
    directory that cannot be created, an output file that cannot be written) ends here as
    `staplegate SUBCOMMAND: 'PATH': reason` on stderr and exit status 1.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        return _dispatch(args_list)
    except OSError as error:
        proxy = not (args_list and args_list[0] in SUBCOMMANDS)
        prefix = "[ALERT] " if proxy else ""
        print(f"{prefix}{_command_name(args_list)}: {describe_os_error(error)}", file=sys.stderr)
        return 1


def _dispatch(args_list: list[str]) -> int:
    try:
        offset = clock_offset_seconds()
    except ClockOffsetError as exc:
        print(f"[ALERT] {exc}.", file=sys.stderr)
        return 1
    if offset:
        print(
            f"[WARNING] {CLOCK_OFFSET_VARIABLE} shifts this process's clock by {offset:+g} s "
            "(a test aid: OCSP validity is judged at the shifted time).",
            file=sys.stderr,
        )
    if args_list and args_list[0] in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[args_list[0]])
        result: int = module.main(args_list[1:])
        return result
    args = build_parser().parse_args(args_list)
    if not args.config_paths:
        print("[ALERT] No configuration file specified (use -f FILE).", file=sys.stderr)
        return 1
    if args.soft_finish or args.hard_finish:
        print(
            "[ALERT] -sf/-st (a new process replacing an old one) is not supported: staplegate "
            "reloads in place. Send SIGUSR2 to the master (`staplegate reload -p PIDFILE`, "
            "`systemctl reload staplegate`).",
            file=sys.stderr,
        )
        return 1
    if args.check_only:
        from staplegate.tools.check import run_check

        return run_check(args.config_paths, verbose=args.verbose)
    from staplegate.app import run

    return run(
        args.config_paths,
        state_dir=args.state_dir,
        workers=args.workers,
        pidfile=args.pidfile,
        daemon=args.daemon,
    )
