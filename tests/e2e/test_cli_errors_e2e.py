"""Every command meets a path it cannot use with one line on stderr, never a traceback.

Paths under /proc cannot be created even by root, and a path through a regular file is
"Not a directory" for everyone, so these hold whoever runs the suite.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from staplegate.testpki.ca import CertificateAuthority

from .harness import free_port

UNCREATABLE = "/proc/staplegate-test/x"

CONFIG = """\
global
    log stdout format raw local0 info

defaults
    mode tcp
    timeout connect 1s
    timeout client 1s
    timeout server 1s

frontend www
    bind 127.0.0.1:{port} ssl crt {bundle}
    default_backend web

backend web
    server web1 127.0.0.1:9
"""


@dataclass(frozen=True)
class Setup:
    """What the commands point at: a real CA, a certificate, a valid configuration."""

    ca: Path
    bundle: Path
    config: Path
    a_file: Path  # a regular file: any path under it is "Not a directory"
    missing: Path  # does not exist


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    base = tmp_path_factory.mktemp("cli-errors")
    ca = base / "ca"
    bundle = CertificateAuthority.init(ca).issue("cli-errors.example.test").bundle_path
    config = base / "haproxy.cfg"
    config.write_text(CONFIG.format(port=free_port(), bundle=bundle), encoding="utf-8")
    a_file = base / "a-file"
    a_file.write_text("not a directory\n", encoding="utf-8")
    return Setup(ca, bundle, config, a_file, base / "missing")


# each case: id -> the command line after `python -m`, with the setup's paths filled in
CASES: dict[str, str] = {
    "ca init uncreatable": "staplegate ca init {uncreatable}",
    "ca init under a file": "staplegate ca init {a_file}/ca",
    "ca issue --out uncreatable": "staplegate ca issue {ca} out.example.test --out {uncreatable}",
    "ca ocsp-signer missing": "staplegate ca ocsp-signer {missing}",
    "ca revoke missing": "staplegate ca revoke {missing} x",
    "ca crl missing": "staplegate ca crl {missing}",
    "ca list missing": "staplegate ca list {missing}",
    "responder missing index": "staplegate responder -index {missing} -CA {ca}/certs/ca.pem "
    "-rsigner {ca}/certs/ca.pem -rkey {ca}/private/ca.key -port 0",
    "reload missing pidfile": "staplegate reload -p {missing}",
    "reload pidfile is a directory": "staplegate reload -p {ca}",
    "ocsp fetch missing": "staplegate ocsp fetch {missing}",
    "ocsp show missing": "staplegate ocsp show {missing}",
    "ocsp verify missing": "staplegate ocsp verify {missing} --cert {bundle}",
    "ctl missing socket": "staplegate ctl -S {missing} show info",
    "demo uncreatable": "staplegate.tools.demo --dir {uncreatable} --for 0",
}

# the proxy itself speaks HAProxy's way: `[ALERT]` lines (the config check may add one more)
PROXY_CASES: dict[str, str] = {
    "check missing config": "staplegate -c -f {missing}",
    "run missing config": "staplegate -f {missing}",
    "pidfile uncreatable": "staplegate -f {config} --state-dir {state} -p {uncreatable}",
    "daemon pidfile uncreatable": "staplegate -f {config} --state-dir {state} -D -p {uncreatable}",
    "state dir uncreatable": "staplegate -f {config} --state-dir {uncreatable}",
    "state dir is a file": "staplegate -f {config} --state-dir {a_file}",
    "daemon state dir uncreatable": "staplegate -f {config} -D --state-dir {uncreatable}",
}


def _argv(template: str, setup: Setup) -> list[str]:
    return template.format(
        uncreatable=UNCREATABLE,
        a_file=setup.a_file,
        ca=setup.ca,
        bundle=setup.bundle,
        config=setup.config,
        missing=setup.missing,
        state=setup.a_file.parent / "state",
    ).split()


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_subcommand_refuses_an_unusable_path_in_one_line(setup: Setup, case: str) -> None:
    result = _run(_argv(CASES[case], setup))
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(("staplegate", "usage")), lines


@pytest.mark.parametrize("case", sorted(PROXY_CASES))
def test_the_proxy_refuses_an_unusable_path_with_alerts(setup: Setup, case: str) -> None:
    result = _run(_argv(PROXY_CASES[case], setup))
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert 1 <= len(lines) <= 2, result.stderr
    assert all(line.startswith("[ALERT]") for line in lines), lines


def test_an_unusable_out_directory_records_no_certificate(setup: Setup) -> None:
    """`ca issue --out` that cannot be created leaves the name free to issue again."""
    argv = ["staplegate", "ca", "issue", str(setup.ca), "retry.example.test"]
    assert _run([*argv, "--out", UNCREATABLE]).returncode != 0
    listing = _run(["staplegate", "ca", "list", str(setup.ca)])
    assert "retry.example.test" not in listing.stdout
    again = _run(argv)
    assert again.returncode == 0, again.stderr
