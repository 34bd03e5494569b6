"""`staplegate crl check` in process: verdict lines, exit statuses, and refusals of its inputs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from staplegate.testpki.ca import CertificateAuthority, IssuedCertificate
from staplegate.tools.crl import EXIT_GOOD, EXIT_NO_VERDICT, EXIT_REVOKED, main


def _check(*argv: str | Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(["check", *map(str, argv)], out=out, err=err)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.init(tmp_path / "ca", ocsp_url=None)


@pytest.fixture
def leaf(ca: CertificateAuthority) -> IssuedCertificate:
    return ca.issue("www.test", crl_url="http://127.0.0.1:1/crl")


def test_good_prints_the_verdict_and_the_crl_facts(
    ca: CertificateAuthority, leaf: IssuedCertificate
) -> None:
    status, out, err = _check(leaf.bundle_path, "--crl", ca.crl())
    assert (status, err) == (EXIT_GOOD, "")
    verdict = f"{leaf.bundle_path}: good (serial {leaf.serial:X} not listed)"
    assert out.splitlines()[0] == f"{verdict} in the CRL from {ca.crl_path}"
    assert "CRL Number: 1; issuer: " in out


def test_revoked_exits_1_with_reason_and_time(
    ca: CertificateAuthority, leaf: IssuedCertificate
) -> None:
    ca.revoke("www.test", reason="cessationOfOperation")
    status, out, _ = _check(leaf.bundle_path, "--issuer", ca.ca_cert_path, "--crl", ca.crl())
    assert status == EXIT_REVOKED
    assert "REVOKED" in out.splitlines()[0]
    assert "Revocation Reason: cessationOfOperation" in out


def test_a_refused_crl_exits_2_with_reason_and_hint(
    tmp_path: Path, leaf: IssuedCertificate
) -> None:
    garbage = tmp_path / "garbage.crl"
    garbage.write_bytes(b"\x30\x82\x01")
    status, out, err = _check(leaf.bundle_path, "--crl", garbage)
    assert (status, out) == (EXIT_NO_VERDICT, "")
    assert "Reason: unparsable" in err
    assert "Hint: " in err


def test_unusable_inputs_exit_2_in_one_line(
    tmp_path: Path, ca: CertificateAuthority, leaf: IssuedCertificate
) -> None:
    status, _, err = _check(tmp_path / "nope.pem", "--crl", ca.crl())
    assert status == EXIT_NO_VERDICT
    assert err.startswith("staplegate crl check: cannot read certificate file")
    status, _, err = _check(leaf.bundle_path, "--crl", tmp_path / "nope.crl")
    assert status == EXIT_NO_VERDICT
    assert "cannot read CRL file" in err
    no_dp = ca.issue("nodp.test")
    status, _, err = _check(no_dp.bundle_path)
    assert status == EXIT_NO_VERDICT
    assert "no http(s) CRL Distribution Point" in err
    status, _, err = _check(leaf.bundle_path, "--url", "ftp://127.0.0.1/crl")
    assert status == EXIT_NO_VERDICT
    assert err.startswith("CRL fetch FAILED: invalid-url")
    assert err.count("\n") == 1


@pytest.mark.parametrize("option", [["--skew", "-1"], ["--max-size", "0"], ["--proxy", "x"]])
def test_bad_options_are_usage_errors(leaf: IssuedCertificate, option: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        _check(leaf.bundle_path, *option)
    assert caught.value.code == 2
