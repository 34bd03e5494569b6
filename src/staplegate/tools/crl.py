"""`staplegate crl check`: what a certificate's CRL says about it, with the daemon's rules.

The CRL comes from `--crl FILE` (DER or PEM) or, with `--fetch` (the default when no file is
given), from the certificate's first http(s) CRL Distribution Point through the same HTTP
client as OCSP fetches. It goes through `staplegate.crl.verify` (issuer, signature, delta,
time window with `--skew`, distribution point) and the certificate's serial is looked up.

Exit status: 0 good, 1 revoked, 2 no verdict (unreadable input, fetch failed, CRL refused).
Time comes from `SystemClock`, so `STAPLEGATE_CLOCK_OFFSET` applies here too.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from staplegate.clock import SystemClock
from staplegate.crl.verify import (
    DEFAULT_SKEW,
    CrlError,
    CrlStatus,
    CrlVerdict,
    check_certificate,
    crl_urls,
)
from staplegate.fetch.client import (
    DEFAULT_CRL_MAX_BODY,
    DEFAULT_CRL_TIMEOUT,
    FetchSettings,
    OcspHttpClient,
)
from staplegate.tools.ocsp import (
    CertificateInput,
    InputError,
    load_certificate_input,
    openssl_time,
)

EXIT_GOOD = 0
EXIT_REVOKED = 1
EXIT_NO_VERDICT = 2


def format_verdict(verdict: CrlVerdict, source: CertificateInput, origin: str) -> list[str]:
    """The verdict first, then the facts an operator checks."""
    serial = f"{verdict.serial:X}"
    if verdict.status is CrlStatus.REVOKED:
        when = openssl_time(verdict.revocation_time) if verdict.revocation_time else "unknown"
        lines = [
            f"{source.path}: REVOKED (serial {serial}) by the CRL from {origin}",
            f"Revocation Time: {when}",
            f"Revocation Reason: {verdict.revocation_reason or 'unspecified'}",
        ]
    else:
        lines = [f"{source.path}: good (serial {serial} not listed) in the CRL from {origin}"]
    number = "none" if verdict.crl_number is None else str(verdict.crl_number)
    return [
        *lines,
        f"This Update: {openssl_time(verdict.this_update)}",
        f"Next Update: {openssl_time(verdict.next_update)}",
        f"CRL Number: {number}; issuer: {source.issuer_origin}",
    ]


def format_failure(error: CrlError, origin: str) -> list[str]:
    return [
        f"CRL check FAILED for the CRL from {origin}: {error}",
        f"Reason: {error.reason.value}",
        f"Hint: {error.hint}",
    ]


def _print(out: TextIO, lines: Sequence[str]) -> None:
    out.write("".join(f"{line}\n" for line in lines))


def _fetch(url: str, args: argparse.Namespace) -> bytes | str:
    """The CRL's bytes, or the one-line reason the fetch failed."""

    async def run() -> bytes | str:
        client = OcspHttpClient(FetchSettings(proxy=args.proxy))
        try:
            result = await client.fetch_crl(url, max_body=args.max_size, total_timeout=args.timeout)
        finally:
            await client.close()
        if result.body is None:
            return f"{result.failure.value if result.failure else 'failed'}: {result.detail}"
        return result.body

    return asyncio.run(run())


def _cmd_check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    source = load_certificate_input(args.cert, args.issuer)
    if args.crl is not None:
        origin = str(args.crl)
        try:
            data = args.crl.read_bytes()
        except OSError as exc:
            _print(err, [f"cannot read CRL file '{args.crl}': {exc.strerror or exc}"])
            return EXIT_NO_VERDICT
    else:
        urls = [args.url] if args.url else crl_urls(source.certificate)
        if not urls:
            _print(
                err,
                [f"{source.path}: no http(s) CRL Distribution Point; give --crl FILE or --url URL"],
            )
            return EXIT_NO_VERDICT
        origin = urls[0]
        fetched = _fetch(origin, args)
        if isinstance(fetched, str):
            _print(err, [f"CRL fetch FAILED: {fetched}"])
            return EXIT_NO_VERDICT
        data = fetched
    try:
        verdict = check_certificate(
            data, source.certificate, source.issuer, now=SystemClock().now(), skew=args.skew
        )
    except CrlError as error:
        _print(err, format_failure(error, origin))
        return EXIT_NO_VERDICT
    _print(out, format_verdict(verdict, source, origin))
    return EXIT_REVOKED if verdict.status is CrlStatus.REVOKED else EXIT_GOOD


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a number of seconds >= 0: {text!r}")
    return value


def _size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"not a positive number of bytes: {text!r}")
    return value


def _proxy(text: str) -> str:
    try:
        FetchSettings(proxy=text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="staplegate crl", description="Check certificates against their CRL."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = sub.add_parser(
        "check",
        help="exit 0 good, 1 revoked, 2 no verdict (and say why)",
        description="Verify CERT's CRL (issuer, signature, not a delta, current within the "
        "skew, distribution point) and look its serial up. Exit 0 good, 1 revoked, 2 when "
        "there is no verdict.",
    )
    check.add_argument("cert", type=Path, metavar="CERT", help="PEM certificate or HAProxy bundle")
    check.add_argument(
        "--issuer", type=Path, metavar="FILE", help="issuer certificate (default: chain, .issuer)"
    )
    source = check.add_mutually_exclusive_group()
    source.add_argument("--crl", type=Path, metavar="FILE", help="a CRL file (DER or PEM)")
    source.add_argument(
        "--fetch",
        action="store_true",
        help="fetch the CRL from the certificate's distribution point (the default)",
    )
    source.add_argument("--url", metavar="URL", help="fetch the CRL from URL instead")
    check.add_argument(
        "--skew",
        type=_seconds,
        default=DEFAULT_SKEW.total_seconds(),
        metavar="S",
        help=f"clock tolerance in seconds ({DEFAULT_SKEW.total_seconds():.0f})",
    )
    check.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_CRL_TIMEOUT,
        metavar="S",
        help=f"whole-fetch timeout ({DEFAULT_CRL_TIMEOUT:.0f})",
    )
    check.add_argument(
        "--max-size",
        type=_size,
        default=DEFAULT_CRL_MAX_BODY,
        metavar="BYTES",
        help=f"largest CRL fetched ({DEFAULT_CRL_MAX_BODY})",
    )
    check.add_argument(
        "--proxy", type=_proxy, metavar="HOST:PORT", help="HTTP proxy (ocsp-update.httpproxy)"
    )
    check.set_defaults(handler=_cmd_check)
    return parser


def main(argv: list[str], *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run `staplegate crl ARGV`; returns the exit status."""
    stdout = out or sys.stdout
    stderr = err or sys.stderr
    args = build_parser().parse_args(argv)
    args.skew = dt.timedelta(seconds=args.skew)
    try:
        status: int = args.handler(args, stdout, stderr)
    except InputError as error:
        stderr.write(f"staplegate crl {args.command}: {error}\n")
        return EXIT_NO_VERDICT
    return status
