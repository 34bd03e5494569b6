"""`staplegate ocsp fetch|show|verify` run in-process against the suite's live test responder.

The e2e file (tests/e2e/test_ocsp_cli.py) runs the same commands as a process and compares
`show` with openssl's text; these pin the exit statuses and the messages on each path.
"""

from __future__ import annotations

import io
from pathlib import Path

from staplegate.testpki.pytest_plugin import Pki
from staplegate.tools.ocsp import EXIT_FAILED, EXIT_INPUT, EXIT_OK, main


def run(*argv: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main([str(arg) for arg in argv], out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def test_fetch_writes_a_verified_response_that_show_and_verify_accept(
    pki: Pki, tmp_path: Path
) -> None:
    leaf = pki.issue("www.example.test")
    response = tmp_path / "www.ocsp"
    status, out, err = run("fetch", leaf.bundle_path, "--out", response, "--retries", 0)
    assert status == EXIT_OK, err
    assert "<OCSP-UPDATE>" in out
    assert response.read_bytes()[:1] == b"\x30"  # DER
    status, out, _ = run("show", response, "--cert", leaf.bundle_path)
    assert status == EXIT_OK
    assert "OCSP Response Status: successful (0x0)" in out
    assert "Response verify OK for" in out
    status, out, _ = run("verify", response, "--cert", leaf.bundle_path)
    assert status == EXIT_OK
    assert out.startswith(f"{response}: Response verify OK for")


def test_a_response_for_another_certificate_fails_verify_with_the_reason(
    pki: Pki, tmp_path: Path
) -> None:
    www, shop = pki.issue("www.example.test"), pki.issue("shop.example.test")
    response = tmp_path / "www.ocsp"
    assert run("fetch", www.bundle_path, "--out", response, "--retries", 0)[0] == EXIT_OK
    status, out, err = run("verify", response, "--cert", shop.bundle_path)
    assert status == EXIT_FAILED
    assert out == ""
    assert err.startswith(f"{response}: does not verify for ")


def test_unusable_inputs_exit_2_and_say_what_to_give(tmp_path: Path) -> None:
    status, _, err = run("show", tmp_path / "absent.ocsp")
    assert status == EXIT_INPUT
    assert err.startswith("staplegate ocsp show: ")
    garbage = tmp_path / "garbage.ocsp"
    garbage.write_bytes(b"not DER")
    status, _, err = run("show", garbage)
    assert status == EXIT_INPUT
    assert "is not a DER OCSP response" in err
