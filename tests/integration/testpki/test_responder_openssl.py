"""Interop: the seed page's openssl CA recipe, served by `staplegate responder`, read by openssl.

The CA is made only with `openssl req` and `openssl ca` (no staplegate code), the signer key
is encrypted as in the seed (it prompts there; here `-passin`), and the responder command is
the seed's `openssl ocsp -port ...` server line with the program name changed. Clients are
`openssl ocsp -url` (POST) and curl (GET); `openssl ocsp -port` itself never runs here.
"""

from __future__ import annotations

import base64
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from staplegate.testpki.responder_cli import READY_PREFIX

pytestmark = pytest.mark.openssl

PASSPHRASE = "seed-passphrase"

CNF = """\
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
certificate = $dir/certs/rootCA.crt
private_key = $dir/private/rootCA.key
default_md = sha256
default_days = 30
policy = policy_loose
copy_extensions = copy
[ policy_loose ]
commonName = supplied
countryName = optional
organizationName = optional
[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
CN = unused
[ v3_ca ]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[ server_cert ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
authorityInfoAccess = OCSP;URI:http://127.0.0.1:8888
[ ocsp ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, OCSPSigning
"""


def openssl(*args: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, timeout=60, cwd=cwd
    )
    assert result.returncode == 0, f"openssl {args}: {result.stderr}"
    return result.stdout + result.stderr


@dataclass(frozen=True)
class SeedCA:
    dir: Path
    cnf: Path
    ca_cert: Path
    signer_cert: Path
    signer_key: Path
    leaf: Path


@pytest.fixture
def seed_ca(tmp_path: Path) -> SeedCA:
    root = tmp_path / "rootCA"
    for sub in ("certs", "private", "newcerts", "csr"):
        (root / sub).mkdir(parents=True)
    (root / "index.txt").write_text("")
    (root / "serial").write_text("1000\n")
    cnf = tmp_path / "openssl-root.cnf"
    cnf.write_text(CNF.format(dir=root))
    ca_cert, ca_key = root / "certs/rootCA.crt", root / "private/rootCA.key"
    openssl(
        "req", "-config", cnf, "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        "-subj", "/C=US/O=Example Corp/CN=Example Root CA", "-extensions", "v3_ca",
        "-keyout", ca_key, "-out", ca_cert,
    )  # fmt: skip

    def issue(cn: str, extensions: str, *key_args: str) -> tuple[Path, Path]:
        key, csr, cert = (
            root / f"private/{cn}.key",
            root / f"csr/{cn}.csr",
            root / f"certs/{cn}.crt",
        )
        openssl(
            "req", "-config", cnf, "-newkey", "rsa:2048", *key_args, "-keyout", key,
            "-subj", f"/C=US/O=Example Corp/CN={cn}", "-out", csr,
        )  # fmt: skip
        openssl(
            "ca", "-config", cnf, "-batch", "-notext", "-extensions", extensions,
            "-in", csr, "-out", cert, "-passin", f"pass:{PASSPHRASE}",
        )  # fmt: skip
        return cert, key

    signer_cert, signer_key = issue(
        "ocsp.example.com", "ocsp", "-passout", f"pass:{PASSPHRASE}"
    )  # encrypted, as in the seed
    leaf, _ = issue("www.example.com", "server_cert", "-nodes")
    assert "ENCRYPTED" in signer_key.read_text()
    return SeedCA(root, cnf, ca_cert, signer_cert, signer_key, leaf)


@dataclass
class Running:
    process: subprocess.Popen[str]
    url: str
    log: Path


def start_responder(ca: SeedCA, *extra: str, log: Path) -> Running:
    command = [
        sys.executable, "-m", "staplegate", "responder",
        "-port", "0",
        "-index", str(ca.dir / "index.txt"),
        "-rsigner", str(ca.signer_cert),
        "-rkey", str(ca.signer_key),
        "-CA", str(ca.ca_cert),
        "-text",
        "-nmin", "60",
        *extra,
    ]  # fmt: skip
    handle = log.open("w")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=handle, text=True)
    handle.close()
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=30):
            process.kill()
            pytest.fail(f"no readiness line; log: {log.read_text()}")
    line = process.stdout.readline()
    if not line.startswith(READY_PREFIX):
        process.kill()
        process.wait()
        pytest.fail(f"unexpected first line {line!r}; log: {log.read_text()}")
    return Running(process, line.removeprefix(READY_PREFIX).strip(), log)


@pytest.fixture
def responder(seed_ca: SeedCA, tmp_path: Path) -> Iterator[Running]:
    running = start_responder(seed_ca, "-passin", f"pass:{PASSPHRASE}", log=tmp_path / "log")
    yield running
    running.process.terminate()
    assert running.process.wait(timeout=10) == 0
    assert running.process.stdout is not None
    running.process.stdout.close()


def wait_for_log(path: Path, needle: str, *, timeout: float = 10.0) -> str:
    """The responder's log once it holds `needle` (it is written after each answer)."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text()
        if needle in text or time.monotonic() > deadline:
            assert needle in text, text
            return text
        time.sleep(0.02)


def query(ca: SeedCA, url: str, *extra: str) -> str:
    return openssl(
        "ocsp", "-issuer", ca.ca_cert, "-cert", ca.leaf, "-url", url,
        "-CAfile", ca.ca_cert, "-resp_text", *extra,
    )  # fmt: skip


@pytest.mark.parametrize("nonce", [True, False], ids=["nonce", "no_nonce"])
def test_good_then_revoked_after_openssl_ca_revoke(
    seed_ca: SeedCA, responder: Running, nonce: bool
) -> None:
    extra = () if nonce else ("-no_nonce",)
    out = query(seed_ca, responder.url, *extra)
    assert "Response verify OK" in out
    assert f"{seed_ca.leaf}: good" in out
    assert "Next Update:" in out
    assert "CN = ocsp.example.com" in out  # Responder Id, as in the seed's output
    assert ("WARNING: no nonce in response" in out) is False

    openssl(
        "ca", "-config", seed_ca.cnf, "-revoke", seed_ca.leaf,
        "-crl_reason", "keyCompromise", "-passin", f"pass:{PASSPHRASE}",
    )  # fmt: skip
    out = query(seed_ca, responder.url, *extra)
    assert "Response verify OK" in out
    assert f"{seed_ca.leaf}: revoked" in out
    assert "Reason: keyCompromise" in out
    # the responder writes its log line after the answer is sent: poll for it
    log = wait_for_log(responder.log, "cert=revoked")
    assert "cert=good" in log
    assert f"nonce={'yes' if nonce else 'no'}" in log


def test_get_sized_request_with_curl(seed_ca: SeedCA, responder: Running, tmp_path: Path) -> None:
    request, response = tmp_path / "req.der", tmp_path / "resp.der"
    openssl(
        "ocsp", "-issuer", seed_ca.ca_cert, "-cert", seed_ca.leaf, "-no_nonce",
        "-reqout", request,
    )  # fmt: skip
    der = request.read_bytes()
    assert len(der) + len(responder.url) < 255  # HAProxy would use GET for this one
    url = f"{responder.url}/{quote(base64.b64encode(der).decode(), safe='')}"
    result = subprocess.run(
        ["curl", "-sS", "--noproxy", "*", "-D", "-", "-o", str(response), url],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    headers = result.stdout.lower()
    assert "content-type: application/ocsp-response" in headers
    assert "cache-control: max-age=" in headers
    assert "etag: " in headers
    out = openssl(
        "ocsp", "-respin", response, "-issuer", seed_ca.ca_cert, "-cert", seed_ca.leaf,
        "-CAfile", seed_ca.ca_cert, "-resp_text",
    )  # fmt: skip
    assert "Response verify OK" in out
    assert f"{seed_ca.leaf}: good" in out


def test_two_workers_share_the_port(seed_ca: SeedCA, tmp_path: Path) -> None:
    running = start_responder(
        seed_ca, "-passin", f"pass:{PASSPHRASE}", "--workers", "2", log=tmp_path / "log"
    )
    try:
        for _ in range(4):
            assert f"{seed_ca.leaf}: good" in query(seed_ca, running.url, "-no_nonce")
    finally:
        running.process.terminate()
        assert running.process.wait(timeout=10) == 0
        assert running.process.stdout is not None
        running.process.stdout.close()


def test_encrypted_key_without_passin_is_refused(seed_ca: SeedCA) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "staplegate", "responder", "-port", "0",
            "-index", str(seed_ca.dir / "index.txt"), "-CA", str(seed_ca.ca_cert),
            "-rsigner", str(seed_ca.signer_cert), "-rkey", str(seed_ca.signer_key),
        ],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 1
    assert "is encrypted: give its passphrase with -passin" in result.stderr
    assert PASSPHRASE not in result.stderr


def test_short_nmin_warns_and_bad_passin_is_refused(seed_ca: SeedCA, tmp_path: Path) -> None:
    running = start_responder(
        seed_ca, "-passin", f"pass:{PASSPHRASE}", "-nmin", "5", log=tmp_path / "log"
    )
    try:
        out = query(seed_ca, running.url, "-no_nonce")
        assert f"{seed_ca.leaf}: good" in out
    finally:
        running.process.terminate()
        running.process.wait(timeout=10)
        assert running.process.stdout is not None
        running.process.stdout.close()
    assert "warning: -nmin 5 is below 10" in running.log.read_text()

    result = subprocess.run(
        [
            sys.executable, "-m", "staplegate", "responder", "-port", "0",
            "-index", str(seed_ca.dir / "index.txt"), "-CA", str(seed_ca.ca_cert),
            "-rsigner", str(seed_ca.signer_cert), "-rkey", str(seed_ca.signer_key),
            "-passin", "env:SG_TEST_UNSET_VARIABLE",
        ],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    assert "env:SG_TEST_UNSET_VARIABLE: the variable is not set" in result.stderr
