"""`staplegate ctl`: talk to a stats socket without socat.

    staplegate ctl [-S SOCKET] [--json] COMMAND...      one command, answer on stdout
    staplegate ctl [-S SOCKET]                          interactive (readline, history)

SOCKET is a Unix socket path or `[ipv4@]HOST:PORT` (default: $STAPLEGATE_SOCKET, else
/run/staplegate/admin.sock). A command ending with `<<` sends standard input as its payload
(`staplegate ctl set ssl cert site.pem '<<' < site.pem`); blank lines are dropped from it,
since an empty line ends a payload. `--json` turns every answer into JSON: the `show`
tables, `update ssl ocsp-response`'s outcome and `reload`'s report as structures, any other
answer as `{"answer": text}` (parsed from HAProxy's text on this side; the server speaks only
HAProxy's format).
Each command uses its own connection, like `echo CMD | socat stdio SOCKET`.

Exit status: 0 answered, 1 refused (`Permission denied`, unknown command), 2 no connection.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sys
from pathlib import Path

from staplegate.runtime.textparse import parse_answer

DEFAULT_SOCKET = "/run/staplegate/admin.sock"
HISTORY = Path("~/.staplegate_ctl_history")
_REFUSALS = ("Permission denied", "Unknown command")


class CtlError(Exception):
    """The socket could not be reached; the text says which and why."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="staplegate ctl",
        description="Send runtime-API commands to a staplegate (or HAProxy) stats socket.",
    )
    parser.add_argument(
        "-S",
        "--socket",
        default=os.environ.get("STAPLEGATE_SOCKET", DEFAULT_SOCKET),
        help="Unix socket path or [ipv4@]HOST:PORT (default: $STAPLEGATE_SOCKET or "
        f"{DEFAULT_SOCKET})",
    )
    parser.add_argument("--json", action="store_true", help="print answers as JSON")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for an answer (default 60)"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to send")
    return parser


def connect(target: str, timeout: float) -> socket.socket:
    """A connected socket to `target` (path, `HOST:PORT` or `ipv4@HOST:PORT`)."""
    address = target.removeprefix("unix@")
    tcp = None
    for prefix in ("ipv4@", "tcp@", "tcp4@"):
        if address.startswith(prefix):
            tcp = address[len(prefix) :]
    if tcp is None and not address.startswith(("/", ".")) and ":" in address:
        tcp = address
    try:
        if tcp is not None:
            host, _, port = tcp.rpartition(":")
            sock = socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(address)
            except OSError:
                sock.close()  # the caller never sees it, so it would leak a descriptor
                raise
    except (OSError, ValueError) as exc:
        raise CtlError(
            f"cannot connect to the stats socket {target}: {exc}; check the path (-S) and "
            "that staplegate runs with a 'stats socket' line"
        ) from exc
    return sock


def send(target: str, command: str, payload: str | None = None, *, timeout: float = 60.0) -> str:
    """Send one command (and payload); return the answer without its final newline."""
    data = command.rstrip("\n") + "\n"
    if payload is not None:
        lines = [line for line in payload.splitlines() if line.strip()]
        data += "".join(f"{line}\n" for line in lines) + "\n"
    with connect(target, timeout) as sock:
        try:
            sock.sendall(data.encode())
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except OSError as exc:
            raise CtlError(f"the stats socket {target} failed during the answer: {exc}") from exc
    answer = b"".join(chunks).decode("utf-8", errors="replace")
    return answer.removesuffix("\n")


def _print_answer(command: str, answer: str, *, as_json: bool) -> int:
    if as_json:
        print(json.dumps(parse_answer(command, answer), indent=2))
    elif answer:
        print(answer, end="" if answer.endswith("\n") else "\n")
    return 1 if answer.startswith(_REFUSALS) else 0


def _one(args: argparse.Namespace) -> int:
    words = list(args.command)
    payload = None
    if words and words[-1] == "--":
        words = words[:-1]
    if words and words[-1] == "<<":
        payload = sys.stdin.read()
    command = " ".join(words)
    answer = send(args.socket, command, payload, timeout=args.timeout)
    return _print_answer(
        command if payload is None else " ".join(words[:-1]), answer, as_json=args.json
    )


def _interactive(args: argparse.Namespace) -> int:
    try:
        import readline
    except ImportError:  # pragma: no cover - readline exists on every Linux Python
        readline = None  # type: ignore[assignment]
    history = HISTORY.expanduser()
    if readline is not None:
        with contextlib.suppress(OSError):
            readline.read_history_file(history)
    status = 0
    try:
        while True:
            try:
                line = input(f"{args.socket}> ")
            except EOFError:
                print()
                break
            command = line.strip()
            if not command:
                continue
            if command in ("quit", "exit"):
                break
            payload = None
            if command.endswith(" <<"):
                lines = []
                while (more := input("")) != "":
                    lines.append(more)
                payload = "\n".join(lines)
                command = command[:-3].rstrip() + " <<"
            try:
                answer = send(args.socket, command, payload, timeout=args.timeout)
            except CtlError as exc:
                print(exc, file=sys.stderr)
                status = 2
                continue
            shown = command.removesuffix(" <<") if payload is not None else command
            status = _print_answer(shown, answer, as_json=args.json)
    finally:
        if readline is not None:
            with contextlib.suppress(OSError):
                readline.write_history_file(history)
    return status


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command:
            return _one(args)
        return _interactive(args)
    except CtlError as exc:
        print(f"staplegate ctl: {exc}", file=sys.stderr)
        return 2
