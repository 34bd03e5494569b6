"""`staplegate sidecar`: keep the HAProxy or nginx an operator already runs stapled.

    staplegate sidecar -f haproxy.cfg [-f MORE] [--haproxy-socket S ...] [--write-ocsp]
        [--reload-cmd CMD] [--state-dir DIR] [--all] [-c]
    staplegate sidecar --nginx nginx.conf [--reload-cmd CMD] [--state-dir DIR] [-c]

This module owns the arguments and turns them into a reader and a delivery factory for
sidecar/service.py; `-c` lists what was found and exits 0, or 1 on any `[ALERT]`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import replace

from staplegate.observe.endpoint import parse_metrics_address
from staplegate.sidecar.haproxy_config import (
    HaproxyDiscovery,
    read_extra_settings,
    read_haproxy_config,
)
from staplegate.sidecar.haproxy_push import HaproxyPush, RuntimeAddress
from staplegate.sidecar.nginx_config import discover as discover_nginx
from staplegate.sidecar.nginx_delivery import build_deliveries as build_nginx_deliveries
from staplegate.sidecar.ocsp_files import OcspFiles
from staplegate.sidecar.reload_command import ReloadCommand
from staplegate.sidecar.service import serve
from staplegate.sidecar.targets import Delivery, DeliveryFactory, Discovery, Reader, Reloader


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="staplegate sidecar",
        description="Keep the certificates of a running HAProxy (or nginx) stapled with "
        "staplegate's OCSP engine, reading their own configuration.",
    )
    parser.add_argument(
        "-f",
        dest="config_paths",
        action="append",
        default=[],
        metavar="FILE",
        help="HAProxy configuration file or directory (repeatable)",
    )
    parser.add_argument(
        "--nginx", action="append", default=[], metavar="CONF", help="nginx configuration"
    )
    parser.add_argument(
        "--haproxy-socket",
        action="append",
        default=[],
        metavar="SOCKET",
        help="HAProxy's runtime API (a path or ipv4@HOST:PORT; repeatable; default: the "
        "configuration's first 'stats socket' of level admin, else its first one)",
    )
    parser.add_argument(
        "--write-ocsp",
        action="store_true",
        help="keep <cert>.ocsp beside each certificate (HAProxy loads it at start)",
    )
    parser.add_argument(
        "--reload-cmd", metavar="CMD", help="run after staple files changed (debounced)"
    )
    parser.add_argument("--state-dir", metavar="DIR", help="where fetched staples persist")
    parser.add_argument(
        "--all",
        dest="update_all",
        action="store_true",
        help="update every certificate with an OCSP URI (HAProxy before 2.8 has no "
        "ocsp-update keyword)",
    )
    parser.add_argument(
        "--extra-config",
        action="append",
        default=[],
        metavar="FILE",
        help="staplegate's own OCSP settings (its 'global' ocsp-update.* lines), which "
        "HAProxy's file cannot carry",
    )
    parser.add_argument(
        "--socket",
        metavar="PATH",
        help="serve staplegate's runtime API on this Unix socket (mode 0600, level admin): "
        "show/update ssl ocsp-response, show ssl ocsp-updates, reload",
    )
    parser.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (staplegate_ocsp_* per "
        "certificate, the CRL watch; keep it on a loopback or management address)",
    )
    parser.add_argument(
        "-c", dest="check_only", action="store_true", help="list the certificates found and exit"
    )
    return parser


def _metrics_address(args: argparse.Namespace) -> tuple[str, int] | str | None:
    """`--metrics` as (host, port), None when absent, or the error line to print."""
    if args.metrics is None:
        return None
    try:
        return parse_metrics_address(args.metrics)
    except ValueError as error:
        return f"[ALERT] sidecar : {error}"


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    if isinstance(_metrics_address(args), str):
        print(_metrics_address(args), file=sys.stderr)
        return 1
    if args.nginx:
        return nginx_main(args)
    if not args.config_paths:
        print(
            "[ALERT] sidecar : no configuration given: use -f haproxy.cfg or --nginx nginx.conf.",
            file=sys.stderr,
        )
        return 1
    try:
        addresses = [RuntimeAddress.parse(s) for s in args.haproxy_socket]
    except ValueError as exc:
        print(f"[ALERT] sidecar : --haproxy-socket {exc}", file=sys.stderr)
        return 1
    paths: list[str] = args.config_paths
    update_all: bool = args.update_all
    extra: list[str] = args.extra_config

    def read_haproxy() -> HaproxyDiscovery:
        return read_haproxy_config(paths, env=os.environ, update_all=update_all, extra_config=extra)

    if args.check_only:
        return check(read_haproxy(), addresses)
    first = read_haproxy()
    if not addresses and first.push_socket is not None and first.discovery.ok:
        try:
            addresses = [RuntimeAddress.parse(first.push_socket.address)]
        except ValueError as exc:
            print(
                f"[ALERT] sidecar : the 'stats socket' at {first.push_socket.source}: {exc}; "
                "give --haproxy-socket",
                file=sys.stderr,
            )
            return 1
    if not addresses and not args.write_ocsp and first.discovery.ok:
        print(
            "[ALERT] sidecar : nowhere to deliver staples: give --haproxy-socket, add a "
            "'stats socket PATH level admin' line to HAProxy's global section, or use "
            "--write-ocsp.",
            file=sys.stderr,
        )
        return 1
    reloader = ReloadCommand(args.reload_cmd) if args.reload_cmd else None
    write_ocsp: bool = args.write_ocsp
    readings = [first]

    def read() -> Discovery:
        if readings:
            return readings.pop().discovery
        return read_haproxy().discovery

    def build(discovery: Discovery) -> list[Delivery]:
        certificates = discovery.certificates
        deliveries: list[Delivery] = [
            HaproxyPush(address, certificates, write_ocsp=write_ocsp, reloader=reloader)
            for address in addresses
        ]
        if write_ocsp:
            # with a socket, HAProxy needs a reload only for a certificate it has no OCSP
            # entry for (the push asks for it); without one, after every changed file
            deliveries.append(OcspFiles(certificates, reloader=None if addresses else reloader))
        return deliveries

    return _serve_until_stopped(args, read, build, reloader)


def nginx_main(args: argparse.Namespace) -> int:
    """`sidecar --nginx CONF`: keep nginx's ssl_stapling_files fresh (sidecar/nginx_*.py)."""
    refused = [
        option
        for option, given in (
            ("-f", bool(args.config_paths)),
            ("--haproxy-socket", bool(args.haproxy_socket)),
            ("--write-ocsp", args.write_ocsp),
            ("--all", args.update_all),
        )
        if given
    ]
    if refused:
        print(
            f"[ALERT] sidecar : {', '.join(refused)} cannot be combined with --nginx "
            "(nginx's certificates are kept through their ssl_stapling_file).",
            file=sys.stderr,
        )
        return 1
    paths: list[str] = args.nginx
    extra: list[str] = args.extra_config

    def read() -> Discovery:
        found = discover_nginx(paths)
        if not extra:
            return found
        # staplegate's own OCSP settings, read as for HAProxy (its `global` ocsp-update.* lines)
        settings = read_extra_settings(extra, env=os.environ)
        return replace(
            found,
            messages=found.messages + settings.messages,
            errors=found.errors + settings.errors,
            settings=settings.settings,
        )

    if args.check_only:
        return list_certificates(read(), summary="nginx: through each ssl_stapling_file")
    reloader = ReloadCommand(args.reload_cmd) if args.reload_cmd else None
    if reloader is None:
        print(
            "[WARNING] sidecar : no --reload-cmd: nginx reads its ssl_stapling_files only at "
            "start and reload, so new staples reach clients at its next reload "
            "(use --reload-cmd 'nginx -s reload' or 'systemctl reload nginx').",
            file=sys.stderr,
        )

    def build(discovery: Discovery) -> list[Delivery]:
        return build_nginx_deliveries(discovery, reloader)

    return _serve_until_stopped(args, read, build, reloader)


def _serve_until_stopped(
    args: argparse.Namespace, read: Reader, build: DeliveryFactory, reloader: Reloader | None
) -> int:
    """Run the sidecar with the options both modes share; 130 on Ctrl-C."""
    metrics = _metrics_address(args)
    assert not isinstance(metrics, str)  # refused in main()
    try:
        return serve(
            read,
            build,
            state_dir=args.state_dir,
            reloader=reloader,
            runtime_socket=args.socket,
            metrics_address=metrics,
        )
    except KeyboardInterrupt:
        return 130


def check(found: HaproxyDiscovery, addresses: Sequence[RuntimeAddress]) -> int:
    """`sidecar -c` for HAProxy: the listing, then where staples would be pushed."""
    targets = [str(a) for a in addresses]
    if not targets and found.push_socket is not None:
        targets = [f"{found.push_socket.address} (stats socket at {found.push_socket.source})"]
    return list_certificates(
        found.discovery, summary=f"HAProxy runtime API: {', '.join(targets) or 'none'}"
    )


def list_certificates(discovery: Discovery, *, summary: str = "") -> int:
    """`sidecar -c`: the certificates, whether each is updated, and any problem; 0 or 1."""
    for line in discovery.messages:
        print(line, file=sys.stderr)
    for line in discovery.errors:
        print(line, file=sys.stderr)
    print("# certificate\tupdates\tOCSP URI\tsource")
    for certificate in discovery.certificates:
        entry = certificate.entry
        print(f"{entry.path}\ton\t{entry.uri}\t{certificate.source}")
    for skipped in discovery.skipped:
        print(f"{skipped.name}\toff ({skipped.reason})\t{skipped.uri or '-'}\t{skipped.source}")
    counts = (
        f"# {len(discovery.certificates)} certificate(s) kept stapled, {len(discovery.skipped)} not"
    )
    print(f"{counts}; {summary}" if summary else counts)
    if discovery.errors:
        print("[ALERT] sidecar : Fatal errors found in configuration.", file=sys.stderr)
        return 1
    return 0
