"""Fuzz target: the sidecar's reader of HAProxy configurations (sidecar/haproxy_config.py).

The sidecar reads configurations it did not write and must never fail on them: whatever the
bytes, the only output allowed is a Discovery whose problems are `[ALERT]`/`[WARNING]` lines.
Each input is written as haproxy.cfg in a scratch directory that also holds a crt-list and a
certificate bundle the seeds name, so mutations reach the crt-list and certificate paths.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from staplegate.sidecar.haproxy_config import read_haproxy_config
from tests.fuzz_targets import Disagreement

NAME = "sidecar_haproxy_config"
_SCRATCH = Path(tempfile.mkdtemp(prefix="sidecar-fuzz-"))


def _bundle() -> bytes:
    """A leaf with an OCSP URI followed by its issuer, so the reader goes all the way."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    aia = x509.AuthorityInformationAccess(
        [x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                x509.UniformResourceIdentifier("http://127.0.0.1:9/"))]
    )  # fmt: skip
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a.test")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(aia, critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, ca))


(_SCRATCH / "site.pem").write_bytes(_bundle())
(_SCRATCH / "list.txt").write_text("site.pem [ocsp-update on alpn h2] a.test !b.test\nsite.pem\n")


def seeds() -> list[bytes]:
    return [
        b"global\n    crt-base .\n    ocsp-update.mode on\n    stats socket ./a.sock level admin\n"
        b"crt-store web\n    load crt site.pem alias s ocsp-update on\n"
        b"frontend f\n    bind :443 ssl crt @web/s crt site.pem crt-list list.txt\n",
        b".if defined(X)\nlisten l\n    bind :1 ssl crt .\n.endif\n",
        b"global\n    ssl-load-extra-files key ocsp\n    ocsp-update.maxdelay 10\n",
    ]


def run_one(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    config = _SCRATCH / "haproxy.cfg"
    config.write_text(text, encoding="utf-8", errors="surrogateescape")
    before = Path.cwd()
    os.chdir(_SCRATCH)  # relative paths in the input resolve in the scratch directory
    # the same bytes as a crt-list, too
    (_SCRATCH / "fuzz.lst").write_text(text, encoding="utf-8", errors="surrogateescape")
    listing = _SCRATCH / "listing.cfg"
    listing.write_text("frontend f\n    bind :443 ssl crt-list fuzz.lst\n")
    try:
        found = [
            read_haproxy_config([str(path)], env={"HOME": "/home/x"}, update_all=True)
            for path in (config, listing)
        ]
    finally:
        os.chdir(before)
    for discovery in (f.discovery for f in found):
        for line in discovery.errors:
            if not line.startswith("[ALERT]"):
                raise Disagreement(f"an error that is not an [ALERT]: {line}")
        for line in discovery.messages:
            if not line.startswith(("[WARNING]", "[NOTICE]")):
                raise Disagreement(f"a message that is neither a warning nor a notice: {line}")
