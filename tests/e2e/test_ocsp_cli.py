"""`staplegate ocsp fetch|show|verify` as an operator runs them: a subprocess, real files.

The responder is the `pki` fixture's (on 127.0.0.1, with fault injection); `openssl ocsp`
reads what `fetch --out` wrote and prints the same fields `show` prints, line for line.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from staplegate.testpki.ca import IssuedCertificate
from staplegate.testpki.faults import FaultKind
from staplegate.testpki.pytest_plugin import Pki
from tests.ocsp_der import BIT_STRING, BOOLEAN, INTEGER, malformed_name_response

from .harness import free_port

pytestmark = pytest.mark.openssl


def staplegate_ocsp(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "staplegate", "ocsp", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def fetch_to(tmp_path: Path, leaf: IssuedCertificate, *extra: str) -> Path:
    out = tmp_path / f"{leaf.name}.ocsp"
    result = staplegate_ocsp("fetch", leaf.bundle_path, "--out", out, *extra)
    assert result.returncode == 0, result.stderr
    return out


def openssl_resp_text(path: Path) -> str:
    result = subprocess.run(
        ["openssl", "ocsp", "-respin", str(path), "-resp_text", "-noverify"],
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    return result.stdout


# --- fetch ---


def test_fetch_prints_the_update_line_and_writes_a_response_openssl_reads(
    tmp_path: Path, pki: Pki
) -> None:
    leaf = pki.issue("www.example.test")
    out = tmp_path / "www.ocsp"
    result = staplegate_ocsp("fetch", leaf.bundle_path, "--out", out)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f'<OCSP-UPDATE> {leaf.bundle_path} 1 "Update successful" 0 1'
    assert "Cert Status: good" in lines
    assert any(line.startswith("This Update: ") and line.endswith(" GMT") for line in lines)
    assert any(line.startswith("Next Update: ") for line in lines)
    assert f"Response written to {out} ({out.stat().st_size} bytes)" in lines
    assert len(pki.responder.requests) == 1
    text = openssl_resp_text(out)
    assert "Cert Status: good" in text
    assert f"Serial Number: {leaf.serial:X}" in text.replace("Serial Number: 0", "Serial Number: ")


def test_fetch_uses_the_chain_when_the_bundle_carries_the_intermediate(
    tmp_path: Path, pki_factory: Callable[..., Pki]
) -> None:
    pki = pki_factory(intermediate=True)
    leaf = pki.issue("www.example.test")
    leaf.issuer_path.unlink()  # only the chain can name the issuer now
    out = fetch_to(tmp_path, leaf)
    result = staplegate_ocsp("verify", out, "--cert", leaf.bundle_path)
    assert result.returncode == 0, result.stderr
    assert f"(issuer: chain of {leaf.bundle_path})" in result.stdout


def test_fetch_of_a_bare_pem_certificate_with_issuer_option(tmp_path: Path, pki: Pki) -> None:
    leaf = pki.issue("www.example.test")
    bare = tmp_path / "bare.crt"
    bare.write_bytes(leaf.certificate.public_bytes(serialization.Encoding.PEM))
    result = staplegate_ocsp("fetch", bare)
    assert result.returncode == 2
    assert "no issuer for 'CN=www.example.test'" in result.stderr
    assert "--issuer" in result.stderr
    result = staplegate_ocsp("fetch", bare, "--issuer", pki.ca.ca_cert_path)
    assert result.returncode == 0, result.stderr
    assert f'<OCSP-UPDATE> {bare} 1 "Update successful" 0 1' in result.stdout


def test_fetch_refuses_an_issuer_that_did_not_issue_the_certificate(
    tmp_path: Path, pki_factory: Callable[..., Pki]
) -> None:
    pki = pki_factory()
    other = pki_factory(name="other")
    leaf = pki.issue("www.example.test")
    result = staplegate_ocsp("fetch", leaf.bundle_path, "--issuer", other.ca.ca_cert_path)
    assert result.returncode == 2
    assert "issued 'CN=www.example.test'" in result.stderr
    assert not pki.responder.requests


def test_fetch_of_a_forged_answer_names_the_check_and_writes_nothing(
    tmp_path: Path, pki: Pki
) -> None:
    leaf = pki.issue("www.example.test")
    pki.responder.set_fault(FaultKind.ROGUE_SIGNER)
    out = tmp_path / "www.ocsp"
    result = staplegate_ocsp("fetch", leaf.bundle_path, "--out", out)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"<OCSP-UPDATE> {leaf.bundle_path} 4 "
        '"OCSP response check failure (OCSP_basic_verify() failed)" 1 0'
    ]
    assert "Reason: signer-not-authorized" in result.stderr
    assert "Hint: " in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (FaultKind.HTTP_500, '2 "HTTP error (HTTP 500 from http://127.0.0.1:'),
        (FaultKind.WRONG_CONTENT_TYPE, '3 "Missing "ocsp-response" header ('),
        (FaultKind.TRY_LATER, '4 "OCSP response check failure (OCSP response not successful'),
        (FaultKind.STALE, '5 "Error during insertion (OCSP single response: no longer valid.'),
    ],
)
def test_fetch_failures_read_like_the_daemon_log(pki: Pki, fault: FaultKind, expected: str) -> None:
    leaf = pki.issue("www.example.test")
    pki.responder.set_fault(fault)
    result = staplegate_ocsp("fetch", leaf.bundle_path)
    assert result.returncode == 1
    line = result.stdout.splitlines()[0]
    assert line.startswith(f"<OCSP-UPDATE> {leaf.bundle_path} {expected}"), line
    assert line.endswith(" 1 0")


def test_fetch_with_the_responder_down_fails_fast_with_retries_zero(pki: Pki) -> None:
    leaf = pki.issue("www.example.test")
    port = free_port()
    result = staplegate_ocsp(
        "fetch", leaf.bundle_path, "--url", f"http://127.0.0.1:{port}", "--retries", "0"
    )
    assert result.returncode == 1
    assert f'2 "HTTP error (connect to 127.0.0.1:{port} refused)" 1 0' in result.stdout
    assert f"Fetch FAILED: connect to 127.0.0.1:{port} refused" in result.stderr


def test_fetch_without_an_ocsp_uri_needs_url(tmp_path: Path, pki: Pki) -> None:
    leaf = pki.ca.issue("nouri.example.test", ocsp_url=None)
    result = staplegate_ocsp("fetch", leaf.bundle_path)
    assert result.returncode == 2
    assert "the certificate has no OCSP URI" in result.stderr
    assert "--url" in result.stderr
    result = staplegate_ocsp("fetch", leaf.bundle_path, "--url", pki.responder.url)
    assert result.returncode == 0, result.stderr


def test_fetch_of_a_revoked_certificate_verifies_and_warns(pki: Pki) -> None:
    leaf = pki.issue("www.example.test")
    pki.revoke("www.example.test", reason="keyCompromise")
    result = staplegate_ocsp("fetch", leaf.bundle_path)
    assert result.returncode == 0, result.stderr
    assert "Cert Status: revoked" in result.stdout
    assert "Revocation Reason: keyCompromise" in result.stdout
    assert "is REVOKED" in result.stderr


def test_fetch_usage_errors(tmp_path: Path) -> None:
    missing = staplegate_ocsp("fetch", tmp_path / "nope.pem")
    assert missing.returncode == 2
    assert f"cannot read certificate file '{tmp_path / 'nope.pem'}'" in missing.stderr
    bad_proxy = staplegate_ocsp("fetch", tmp_path / "nope.pem", "--proxy", "nohostport")
    assert bad_proxy.returncode == 2
    assert "is not host:port" in bad_proxy.stderr


# --- show ---


def test_show_prints_the_fields_openssl_prints(tmp_path: Path, pki: Pki) -> None:
    leaf = pki.issue("www.example.test")
    out = fetch_to(tmp_path, leaf)
    result = staplegate_ocsp("show", out)
    assert result.returncode == 0, result.stderr
    ours = result.stdout.splitlines()
    theirs = openssl_resp_text(out).splitlines()
    # everything up to the signature value is byte-for-byte openssl's text
    head = theirs[: theirs.index("    Signature Value:") + 1]
    assert ours[: len(head)] == head
    assert "    Cert Status: good" in ours
    assert "    Subject: CN = staplegate OCSP Responder" in ours
    assert "Response verify" not in result.stdout  # no --cert, no verdict


def test_show_with_cert_adds_the_verdict(tmp_path: Path, pki: Pki) -> None:
    leaf = pki.issue("www.example.test")
    other = pki.issue("other.example.test")
    out = fetch_to(tmp_path, leaf)
    good = staplegate_ocsp("show", out, "--cert", leaf.bundle_path)
    assert good.returncode == 0
    assert f"Response verify OK for {leaf.bundle_path}" in good.stdout
    wrong = staplegate_ocsp("show", out, "--cert", other.bundle_path)
    assert wrong.returncode == 0  # show displays; `verify` is the one that judges
    assert "Reason: cert-id-mismatch" in wrong.stdout


def test_show_revoked_and_unsuccessful_responses(tmp_path: Path, pki: Pki) -> None:
    leaf = pki.issue("www.example.test")
    pki.revoke("www.example.test", reason="keyCompromise")
    revoked = fetch_to(tmp_path, leaf)
    text = staplegate_ocsp("show", revoked).stdout
    assert "    Cert Status: revoked" in text
    assert "    Revocation Reason: keyCompromise (0x1)" in text
    assert "    Revocation Reason: keyCompromise (0x1)" in openssl_resp_text(revoked)
    try_later = tmp_path / "trylater.ocsp"
    try_later.write_bytes(
        ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER).public_bytes(
            serialization.Encoding.DER
        )
    )
    result = staplegate_ocsp("show", try_later)
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "OCSP Response Data:",
        "    OCSP Response Status: trylater (0x3)",
    ]


def test_show_of_garbage_is_an_input_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.ocsp"
    garbage.write_bytes(b"\x30\x03abc")
    result = staplegate_ocsp("show", garbage)
    assert result.returncode == 2
    assert f"'{garbage}' is not a DER OCSP response" in result.stderr


# --- verify ---


def test_verify_ok_then_each_specific_failure(tmp_path: Path, pki: Pki) -> None:
    leaf = pki.issue("www.example.test")
    other = pki.issue("other.example.test")
    out = fetch_to(tmp_path, leaf)

    ok = staplegate_ocsp("verify", out, "--cert", leaf.bundle_path)
    assert ok.returncode == 0, ok.stderr
    assert f"{out}: Response verify OK for {leaf.bundle_path}" in ok.stdout
    assert "Served until: " in ok.stdout

    mismatch = staplegate_ocsp("verify", out, "--cert", other.bundle_path)
    assert mismatch.returncode == 1
    assert "Reason: cert-id-mismatch" in mismatch.stderr
    assert f"certificate has serial {other.serial:X}" in mismatch.stderr

    # an hour-long response seen 2 hours later: outside the window
    late = staplegate_ocsp(
        "verify", out, "--cert", leaf.bundle_path, env={"STAPLEGATE_CLOCK_OFFSET": "7200"}
    )
    assert late.returncode == 1
    assert "Reason: not-valid-now" in late.stderr
    # 58 minutes later: inside the window but within 300 s of nextUpdate
    soon = staplegate_ocsp(
        "verify", out, "--cert", leaf.bundle_path, env={"STAPLEGATE_CLOCK_OFFSET": "3480"}
    )
    assert soon.returncode == 1
    assert "Reason: expires-too-soon" in soon.stderr

    garbage = tmp_path / "garbage.ocsp"
    garbage.write_bytes(b"not der")
    unparsable = staplegate_ocsp("verify", garbage, "--cert", leaf.bundle_path)
    assert unparsable.returncode == 1
    assert "Reason: unparsable" in unparsable.stderr


def test_verify_refuses_an_issuer_that_did_not_issue_the_certificate(
    tmp_path: Path, pki_factory: Callable[..., Pki]
) -> None:
    pki = pki_factory()
    leaf = pki.issue("www.example.test")
    out = fetch_to(tmp_path, leaf)
    # a second CA with the same name and another key
    twin = pki_factory(name="twin")
    result = staplegate_ocsp(
        "verify", out, "--cert", leaf.bundle_path, "--issuer", twin.ca.ca_cert_path
    )
    assert result.returncode == 2  # twin did not issue the certificate: refused up front
    assert "issued 'CN=www.example.test'" in result.stderr


def test_verify_needs_cert(tmp_path: Path) -> None:
    result = staplegate_ocsp("verify", tmp_path / "x.ocsp")
    assert result.returncode == 2
    assert "--cert" in result.stderr


def test_a_clock_an_hour_behind_refuses_the_signer(tmp_path: Path, pki: Pki) -> None:
    leaf = pki.issue("www.example.test")
    out = fetch_to(tmp_path, leaf)
    this_update = ocsp.load_der_ocsp_response(out.read_bytes()).this_update_utc
    assert abs(this_update - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    result = staplegate_ocsp(
        "verify", out, "--cert", leaf.bundle_path, env={"STAPLEGATE_CLOCK_OFFSET": "-3600"}
    )
    assert result.returncode == 1
    # the delegated signer's certificate is not valid yet an hour ago: checked first
    assert "Reason: signer-not-authorized" in result.stderr
    assert "responder certificate 'CN=staplegate OCSP Responder' is valid from" in result.stderr


@pytest.mark.parametrize("value", ["soon", "nan", "1e300"])
def test_a_bad_clock_offset_is_refused_with_an_alert(tmp_path: Path, value: str) -> None:
    result = staplegate_ocsp(
        "verify", tmp_path / "none.ocsp", env={"STAPLEGATE_CLOCK_OFFSET": value}
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"[ALERT] STAPLEGATE_CLOCK_OFFSET={value!r} is not a number")
    assert "Traceback" not in result.stderr


def test_an_active_clock_offset_is_announced(
    tmp_path: Path, pki_factory: Callable[..., Pki]
) -> None:
    leaf = pki_factory().issue("www.example.test")
    out = fetch_to(tmp_path, leaf)
    result = staplegate_ocsp(
        "verify", out, "--cert", leaf.bundle_path, env={"STAPLEGATE_CLOCK_OFFSET": "60"}
    )
    assert result.returncode == 0, result.stderr
    assert "[WARNING] STAPLEGATE_CLOCK_OFFSET shifts this process's clock by +60 s" in (
        result.stderr
    )


# --- malformed bytes (issue 14, defect 2): a one-line answer, never a traceback ---


@pytest.mark.parametrize(
    "tag", [BOOLEAN, INTEGER, BIT_STRING], ids=["boolean", "integer", "bit-string"]
)
def test_a_malformed_responder_name_is_reported_without_a_traceback(
    tmp_path: Path, pki: Pki, tag: int
) -> None:
    leaf = pki.issue("www.example.test")
    bad = tmp_path / "bad.ocsp"
    bad.write_bytes(
        malformed_name_response(leaf.certificate, leaf.issuer, pki.ca.private_key, tag=tag)
    )

    verify = staplegate_ocsp("verify", bad, "--cert", leaf.bundle_path)
    assert "Traceback" not in verify.stderr
    assert verify.returncode == 1, verify.stderr
    assert "Reason: unparsable" in verify.stderr
    assert "malformed ResponderID name" in verify.stderr

    show = staplegate_ocsp("show", bad)
    assert "Traceback" not in show.stderr
    assert show.returncode == 2, show.stderr
    (line,) = show.stderr.splitlines()
    assert line.startswith(f"staplegate ocsp show: '{bad}' is not a DER OCSP response (")
    assert "malformed ResponderID name" in line

    with_cert = staplegate_ocsp("show", bad, "--cert", leaf.bundle_path)
    assert "Traceback" not in with_cert.stderr
    assert with_cert.returncode == 2
