"""`staplegate responder …`: serve a CA's index.txt over OCSP, spelled like `openssl ocsp`.

Every option has openssl's single-dash spelling too (`-index`, `-CA`, `-rsigner`, `-rkey`,
`-port`, `-nmin`, `-ndays`, `-text`, `-passin`, `-multi`, `-resp_key_id`, `-resp_no_certs`,
`-timeout`), so a documented `openssl ocsp -port …` server command works after changing the
program name. Unlike `openssl ocsp -port` it listens on 127.0.0.1 unless `--host` says
otherwise, and its responses always carry a nextUpdate (default one hour later).

Refusals print one line on stderr saying what to fix, and exit with status 1 (2 for usage).
"""

from __future__ import annotations

import argparse
import datetime as dt
import enum
import getpass
import os
import sys
from pathlib import Path
from typing import Final, TextIO

from staplegate.testpki.faults import FaultPlan, FaultPlanError
from staplegate.testpki.responder import (
    DEFAULT_VALIDITY,
    ResponderConfig,
    load_issuers,
    load_signer_files,
    run_server,
)
from staplegate.testpki.responder_core import ResponderCore

READY_PREFIX: Final = "staplegate responder listening on "
# HAProxy refuses to staple a response within 300 s of its nextUpdate, and refreshes 60 s
# before; with half the validity served from cache, below 10 minutes little is left.
MIN_SENSIBLE_MINUTES: Final = 10


class PassinError(ValueError):
    """A `-passin` source that cannot be read; the message names the source and the fix."""


class PassinKind(enum.Enum):
    PASS = "pass"
    ENV = "env"
    FILE = "file"
    FD = "fd"
    STDIN = "stdin"


def read_passin(source: str, *, stdin: TextIO = sys.stdin) -> bytes:
    """The passphrase from an openssl `-passin` source: pass:, env:, file:, fd: or stdin."""
    kind_text, _, value = source.partition(":")
    try:
        kind = PassinKind(kind_text)
    except ValueError:
        raise PassinError(
            f"-passin {kind_text!r}: use pass:TEXT, env:VAR, file:PATH, fd:N or stdin"
        ) from None
    if kind is PassinKind.PASS:
        return value.encode()
    if kind is PassinKind.ENV:
        if value not in os.environ:
            raise PassinError(f"-passin env:{value}: the variable is not set")
        return os.environ[value].encode()
    if kind is PassinKind.FILE:
        try:
            with open(value, encoding="utf-8") as handle:
                return handle.readline().rstrip("\r\n").encode()
        except OSError as error:
            raise PassinError(f"-passin file:{value}: {error.strerror}") from None
    if kind is PassinKind.FD:
        try:
            with os.fdopen(int(value), encoding="utf-8", closefd=False) as handle:
                return handle.readline().rstrip("\r\n").encode()
        except (OSError, ValueError) as error:
            raise PassinError(f"-passin fd:{value}: {error}") from None
    return stdin.readline().rstrip("\r\n").encode()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="staplegate responder",
        description=(
            "An OCSP responder (RFC 6960 POST, RFC 5019 GET) for openssl ca's index.txt, "
            "with response caching and fault injection. Accepts openssl ocsp's spellings."
        ),
        allow_abbrev=False,
    )
    add = parser.add_argument
    add(
        "--index",
        "-index",
        action="append",
        type=Path,
        required=True,
        metavar="FILE",
        help="openssl ca index.txt (repeat with --CA to serve several CAs)",
    )
    add(
        "--CA",
        "-CA",
        dest="ca",
        action="append",
        type=Path,
        required=True,
        metavar="FILE",
        help="issuing CA certificate the index belongs to (repeatable)",
    )
    add(
        "--rsigner",
        "-rsigner",
        type=Path,
        required=True,
        metavar="FILE",
        help="certificate of the responder (the CA or a delegated OCSP signer)",
    )
    add(
        "--rkey",
        "-rkey",
        type=Path,
        metavar="FILE",
        help="private key of the responder (default: read it from --rsigner)",
    )
    add(
        "--passin",
        "-passin",
        metavar="SRC",
        help="passphrase of an encrypted --rkey: pass:TEXT, env:VAR, file:PATH, fd:N, stdin "
        "(default: prompt on the terminal)",
    )
    add(
        "--port",
        "-port",
        type=int,
        default=8080,
        help="TCP port (default 8080; 0 picks a free one and prints it)",
    )
    add("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    validity = parser.add_mutually_exclusive_group()
    validity.add_argument(
        "--nmin", "-nmin", type=int, metavar="M", help="responses valid for M minutes (default 60)"
    )
    validity.add_argument(
        "--ndays", "-ndays", type=int, metavar="D", help="responses valid for D days"
    )
    add("--text", "-text", action="store_true", help="log a summary of every response")
    add(
        "--workers",
        "-multi",
        type=int,
        default=1,
        metavar="N",
        help="worker processes sharing the port with SO_REUSEPORT (default 1)",
    )
    add(
        "--faults",
        type=Path,
        metavar="FILE",
        help="JSON fault plan, re-read when it changes (POST /_faults rewrites it)",
    )
    add(
        "--no-control",
        dest="control",
        action="store_false",
        help="disable the /_faults control endpoint",
    )
    add(
        "--resp-key-id",
        "-resp_key_id",
        dest="by_key_hash",
        action="store_true",
        help="identify the responder by key hash instead of by name",
    )
    add(
        "--resp-no-certs",
        "-resp_no_certs",
        dest="include_certificate",
        action="store_false",
        help="don't embed the responder certificate in responses",
    )
    add(
        "--max-request-bytes",
        type=int,
        default=16 * 1024,
        metavar="N",
        help="larger request bodies get 413 (default 16384)",
    )
    add(
        "--idle-timeout",
        "-timeout",
        type=float,
        default=15.0,
        metavar="S",
        help="close connections idle (or sending headers) for S seconds (default 15)",
    )
    add("--quiet", action="store_true", help="no per-request log lines")
    return parser  # fmt: skip


def _validity(args: argparse.Namespace) -> dt.timedelta:
    if args.ndays is not None:
        if args.ndays <= 0:
            raise ValueError("-ndays must be at least 1")
        return dt.timedelta(days=args.ndays)
    if args.nmin is not None:
        if args.nmin <= 0:
            raise ValueError("-nmin must be at least 1")
        if args.nmin < MIN_SENSIBLE_MINUTES:
            print(
                f"staplegate responder: warning: -nmin {args.nmin} is below "
                f"{MIN_SENSIBLE_MINUTES}; HAProxy and staplegate won't staple a response that "
                "expires within 300 s, so most of these answers will be refused",
                file=sys.stderr,
            )
        return dt.timedelta(minutes=args.nmin)
    return DEFAULT_VALIDITY


def _config(args: argparse.Namespace) -> ResponderConfig:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key_path: Path = args.rkey or args.rsigner
    password = None
    if args.passin is not None:
        password = read_passin(args.passin)
    else:
        try:
            load_pem_private_key(key_path.read_bytes(), password=None)
        except TypeError:  # encrypted: ask, as openssl does
            if not sys.stdin.isatty():
                raise ValueError(
                    f"{key_path} is encrypted: give its passphrase with -passin "
                    "pass:|env:|file:|fd:|stdin"
                ) from None
            password = getpass.getpass(f"Enter pass phrase for {key_path}:").encode()
    try:
        signer = load_signer_files(
            args.rsigner,
            key_path,
            password=password,
            by_key_hash=args.by_key_hash,
            include_certificate=args.include_certificate,
        )
    except TypeError as error:
        raise ValueError(f"{key_path}: {error}") from None
    if args.faults is not None and args.faults.exists():
        FaultPlan.parse(args.faults.read_text(encoding="utf-8"))  # refuse a bad plan at start
    if args.workers < 1:
        raise ValueError("--workers must be at least 1")
    config = ResponderConfig(
        sources=load_issuers(args.ca, args.index),
        signer=signer,
        validity=_validity(args),
        host=args.host,
        port=args.port,
        max_request_bytes=args.max_request_bytes,
        idle_timeout=args.idle_timeout,
        control=args.control,
        faults_path=args.faults,
        text=args.text,
    )
    for source in config.sources:
        if not source.index_path.is_file():
            raise ValueError(f"{source.index_path}: no such index file")
    ResponderCore(issuers=(), signer=signer, validity=config.validity)  # validates early
    return config


def _ready(url: str) -> None:
    print(READY_PREFIX + url, flush=True)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = _config(args)
    except (OSError, ValueError, PassinError, FaultPlanError) as error:
        text = f"{error.filename}: {error.strerror}" if isinstance(error, OSError) else error
        print(f"staplegate responder: {text}", file=sys.stderr)
        return 1
    log = None if args.quiet else sys.stderr
    try:
        return run_server(config, workers=args.workers, log=log, ready=_ready)
    except OSError as error:
        print(
            f"staplegate responder: cannot listen on {args.host}:{args.port}: {error.strerror}; "
            "choose another --port (0 picks a free one)",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 0
