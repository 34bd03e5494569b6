"""`./dev demo`: build a self-contained staplegate setup on localhost and run it.

The demo makes its own test CA (root + intermediate, in openssl's layout), issues
certificates that point at a local OCSP responder, writes a HAProxy-syntax configuration
using the three ways HAProxy enables OCSP updates (global mode, crt-list, crt-store), and
checks it with `staplegate -c -V`, which prints every certificate's OCSP readiness.
Everything lives under one directory (default `./demo`) and binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from staplegate.testpki.ca import CertificateAuthority, KeyKind

CONFIG_TEMPLATE = """\
# staplegate demo configuration, in HAProxy's syntax.
global
    log stdout format raw local0 info
    stats socket {socket} mode 600 level admin
    ocsp-update.mode on
    ocsp-update.mindelay 300
    ocsp-update.maxdelay 3600
    crt-base {certs}

defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s

crt-store demo
    crt-base {certs}
    load crt api.example.test.pem ocsp-update on alias api

frontend www
    bind 127.0.0.1:{https_port} ssl crt-list {crt_list} crt "@demo/api"
    default_backend webservers

backend webservers
    server web1 127.0.0.1:{backend_port} check
"""

CRT_LIST_TEMPLATE = """\
# certificate [options] [SNI filters]
www.example.test.pem [alpn h2,http/1.1 ocsp-update on] www.example.test
legacy.example.test.pem legacy.example.test
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def build(directory: Path, *, responder_port: int) -> Path:
    """Create the CA, certificates and configuration under `directory`; return the config."""
    if directory.exists():
        shutil.rmtree(directory)
    certs = directory / "certs"
    certs.mkdir(parents=True)
    ca = CertificateAuthority.init(
        directory / "pki",
        name="staplegate Demo CA",
        intermediate=True,
        ocsp_url=f"http://127.0.0.1:{responder_port}",
    )
    ca.issue("www.example.test", out_dir=certs)
    ca.issue("api.example.test", key=KeyKind.RSA2048, out_dir=certs)
    ca.issue("legacy.example.test", ocsp_url=None, out_dir=certs)
    ca.ocsp_signer(cn="staplegate Demo OCSP Responder")
    crt_list = directory / "crt-list.txt"
    crt_list.write_text(CRT_LIST_TEMPLATE, encoding="utf-8")
    config = directory / "haproxy.cfg"
    config.write_text(
        CONFIG_TEMPLATE.format(
            socket=directory / "staplegate.sock",
            certs=certs,
            crt_list=crt_list,
            https_port=free_port(),
            backend_port=free_port(),
        ),
        encoding="utf-8",
    )
    return config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="staplegate-demo", description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("demo"), help="where to build it")
    args = parser.parse_args(argv)
    directory: Path = args.dir.resolve()
    responder_port = free_port()
    print(f"== staplegate demo in {directory} ==")
    config = build(directory, responder_port=responder_port)
    print(
        f"[1/2] test CA, certificates and {config.name} written (OCSP URL "
        f"http://127.0.0.1:{responder_port})"
    )
    print(f"[2/2] staplegate -c -V -f {config}")
    sys.stdout.flush()
    from staplegate.check import run_check

    return run_check([str(config)], verbose=True)


if __name__ == "__main__":
    sys.exit(main())
