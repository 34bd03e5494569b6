"""`staplegate ca …`: the command-line face of the test CA in `ca.py`.

Each subcommand is one call into `CertificateAuthority`; refusals (`CAError`) become one
line on stderr naming the file or directory involved, and exit status 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from staplegate.testpki.ca import (
    DEFAULT,
    DEFAULT_CA_NAME,
    DEFAULT_OCSP_URL,
    DEFAULT_SIGNER_CN,
    CAError,
    CertificateAuthority,
    KeyKind,
)
from staplegate.testpki.index import REVOCATION_REASONS, format_serial, format_time

_KEYS = [kind.value for kind in KeyKind]


def _timestamp(text: str) -> dt.datetime:
    """An ISO 8601 time for --not-before/--not-after; UTC unless it says otherwise."""
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {text!r} (e.g. 2024-01-31T12:00:00Z)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="staplegate ca",
        description="A test CA in openssl's `ca` layout (openssl ca and openssl ocsp work on it).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = sub.add_parser("init", help="create a root (and optional intermediate) CA in DIR")
    init.add_argument("directory", type=Path, metavar="DIR")
    init.add_argument("--name", default=DEFAULT_CA_NAME, help="CN of the issuing CA")
    init.add_argument("--key", choices=_KEYS, default=KeyKind.EC256.value)
    init.add_argument(
        "--intermediate", action="store_true", help="issue from an intermediate under the root"
    )
    url = init.add_mutually_exclusive_group()
    url.add_argument(
        "--ocsp-url",
        default=DEFAULT_OCSP_URL,
        metavar="URL",
        help=f"default OCSP URL put in issued certificates (default {DEFAULT_OCSP_URL})",
    )
    url.add_argument(
        "--no-ocsp-url",
        dest="ocsp_url",
        action="store_const",
        const=None,
        help="issue certificates without an OCSP URL by default",
    )

    signer = sub.add_parser("ocsp-signer", help="issue a delegated OCSP responder certificate")
    signer.add_argument("directory", type=Path, metavar="DIR")
    signer.add_argument("--cn", default=DEFAULT_SIGNER_CN)
    signer.add_argument(
        "--nocheck", action="store_true", help="add the id-pkix-ocsp-nocheck extension"
    )
    signer.add_argument("--key", choices=_KEYS, default=KeyKind.EC256.value)
    signer.add_argument("--days", type=int, default=365)

    issue = sub.add_parser("issue", help="issue a server certificate as a HAProxy bundle")
    issue.add_argument("directory", type=Path, metavar="DIR")
    issue.add_argument("name", metavar="NAME", help="CN and file name (NAME.pem)")
    issue.add_argument(
        "--san",
        action="append",
        default=[],
        help="subject alternative name (DNS name or IP; repeatable or comma-separated; "
        "default: NAME when it looks like a host name)",
    )
    issue.add_argument("--key", choices=_KEYS, default=KeyKind.EC256.value)
    leaf_url = issue.add_mutually_exclusive_group()
    leaf_url.add_argument(
        "--ocsp-url",
        action="append",
        metavar="URL",
        help="OCSP URL in the AIA (repeatable, kept in order; default: the CA's)",
    )
    leaf_url.add_argument("--no-ocsp-url", action="store_true", help="no OCSP URL at all")
    issue.add_argument("--crl-url", metavar="URL", help="add a CRL Distribution Point")
    issue.add_argument(
        "--must-staple", action="store_true", help="add the TLS feature status_request"
    )
    issue.add_argument("--days", type=int, default=90)
    issue.add_argument("--not-before", type=_timestamp, metavar="TIME", help="ISO 8601, UTC")
    issue.add_argument("--not-after", type=_timestamp, metavar="TIME", help="ISO 8601, UTC")
    issue.add_argument(
        "--include-root", action="store_true", help="append the root to the bundle's chain"
    )
    issue.add_argument("--out", type=Path, metavar="DIR", help="output directory (DIR/issued)")

    revoke = sub.add_parser("revoke", help="mark a certificate revoked in index.txt")
    revoke.add_argument("directory", type=Path, metavar="DIR")
    revoke.add_argument("target", metavar="NAME|SERIAL", help="certificate name or hex serial")
    revoke.add_argument("--reason", help="one of: " + ", ".join(REVOCATION_REASONS))

    crl = sub.add_parser("crl", help="write DIR/crl/crl.pem signed by the CA")
    crl.add_argument("directory", type=Path, metavar="DIR")
    crl_lifetime = crl.add_mutually_exclusive_group()
    crl_lifetime.add_argument("--days", type=int, default=7, help="nextUpdate in days (default 7)")
    crl_lifetime.add_argument(
        "--seconds", type=int, metavar="N", help="nextUpdate N seconds after thisUpdate"
    )

    listing = sub.add_parser("list", help="print index.txt in a readable form")
    listing.add_argument("directory", type=Path, metavar="DIR")
    return parser


def _run(args: argparse.Namespace) -> int:
    command: str = args.command
    if command == "init":
        ca = CertificateAuthority.init(
            args.directory,
            name=args.name,
            key=KeyKind(args.key),
            intermediate=args.intermediate,
            ocsp_url=args.ocsp_url,
        )
        print(f"CA {ca.settings.name!r} in {ca.directory}")
        print(f"  issuing CA: {ca.ca_cert_path}")
        print(f"  root:       {ca.root_cert_path}")
        print(f"  config:     {ca.config_path}")
        return 0
    ca = CertificateAuthority.open(args.directory)
    if command == "ocsp-signer":
        signer = ca.ocsp_signer(
            cn=args.cn, nocheck=args.nocheck, key=KeyKind(args.key), days=args.days
        )
        print(f"OCSP signer serial {format_serial(signer.serial)}")
        print(f"  certificate: {signer.cert_path}")
        print(f"  key:         {signer.key_path}")
        return 0
    if command == "issue":
        sans = [s.strip() for item in args.san for s in item.split(",") if s.strip()]
        issued = ca.issue(
            args.name,
            sans=sans,
            key=KeyKind(args.key),
            ocsp_url=None if args.no_ocsp_url else (args.ocsp_url or DEFAULT),
            crl_url=args.crl_url,
            must_staple=args.must_staple,
            days=args.days,
            out_dir=args.out,
            not_before=args.not_before,
            not_after=args.not_after,
            include_root=args.include_root,
        )
        print(f"issued serial {format_serial(issued.serial)} for CN={issued.name}")
        print(f"  bundle: {issued.bundle_path}")
        print(f"  issuer: {issued.issuer_path}")
        return 0
    if command == "revoke":
        entry = ca.revoke(args.target, reason=args.reason)
        print(f"revoked serial {format_serial(entry.serial)} ({entry.subject})")
        return 0
    if command == "crl":
        path = ca.crl(days=args.days, seconds=args.seconds)
        print(f"CRL written to {path}")
        return 0
    for entry in ca.entries():
        revocation = ""
        if entry.revoked_at is not None:
            revocation = f" revoked {format_time(entry.revoked_at)}"
            if entry.revocation_reason:
                revocation += f" ({entry.revocation_reason})"
        print(
            f"{entry.status.value} {format_serial(entry.serial)} {entry.subject} "
            f"expires {format_time(entry.expires)}{revocation}"
        )
    return 0


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except CAError as error:
        print(f"staplegate ca {args.command}: {error}", file=sys.stderr)
        return 1
