"""`staplegate ca …`: every subcommand through the real entry point, and its refusals."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from staplegate.cli import main as staplegate_main
from staplegate.testpki.ca import CertificateAuthority
from staplegate.testpki.index import EntryStatus


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """`python -m staplegate ca ARGS` in a subprocess, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "staplegate", "ca", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_subcommand_as_a_subprocess(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    out_dir = tmp_path / "out"

    result = _run("init", ca_dir, "--name", "CLI CA", "--intermediate", "--key", "ec384")
    assert result.returncode == 0, result.stderr
    assert str(ca_dir / "certs" / "ca.pem") in result.stdout

    result = _run("ocsp-signer", ca_dir, "--nocheck")
    assert result.returncode == 0, result.stderr
    assert (ca_dir / "private" / "ocsp-signer.key").exists()

    result = _run(
        "issue", ca_dir, "www.test", "--san", "www.test,alt.test", "--must-staple", "--out", out_dir
    )
    assert result.returncode == 0, result.stderr
    assert str(out_dir / "www.test.pem") in result.stdout
    leaf = x509.load_pem_x509_certificate((out_dir / "www.test.pem").read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["www.test", "alt.test"]
    assert leaf.extensions.get_extension_for_class(x509.TLSFeature)
    assert (out_dir / "www.test.pem.issuer").exists()

    result = _run("revoke", ca_dir, "www.test", "--reason", "superseded")
    assert result.returncode == 0, result.stderr
    ca = CertificateAuthority.open(ca_dir)
    assert ca.resolve(leaf.serial_number).status is EntryStatus.REVOKED

    result = _run("crl", ca_dir)
    assert result.returncode == 0, result.stderr
    crl = x509.load_pem_x509_crl((ca_dir / "crl" / "crl.pem").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None

    result = _run("list", ca_dir)
    assert result.returncode == 0, result.stderr
    assert f"R {leaf.serial_number:X} /CN=www.test" in result.stdout


def test_issue_defaults_and_options_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca_dir = tmp_path / "ca"
    assert staplegate_main(["ca", "init", str(ca_dir), "--ocsp-url", "http://127.0.0.1:1234"]) == 0
    assert staplegate_main(["ca", "issue", str(ca_dir), "a.test"]) == 0
    assert staplegate_main(["ca", "issue", str(ca_dir), "b.test", "--no-ocsp-url"]) == 0
    assert (
        staplegate_main(
            [
                "ca",
                "issue",
                str(ca_dir),
                "old.test",
                "--not-before",
                "2020-01-01T00:00:00",
                "--days",
                "1",
                "--key",
                "rsa2048",
            ]
        )
        == 0
    )
    capsys.readouterr()
    issued = ca_dir / "issued"
    a = x509.load_pem_x509_certificate((issued / "a.test.pem").read_bytes())
    aia = a.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [d.access_location.value for d in aia] == ["http://127.0.0.1:1234"]
    b = x509.load_pem_x509_certificate((issued / "b.test.pem").read_bytes())
    with pytest.raises(x509.ExtensionNotFound):
        b.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    old = x509.load_pem_x509_certificate((issued / "old.test.pem").read_bytes())
    assert old.not_valid_after_utc.isoformat() == "2020-01-02T00:00:00+00:00"


def test_issue_crl_url_repeated_ocsp_urls_and_crl_seconds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca_dir = tmp_path / "ca"
    assert staplegate_main(["ca", "init", str(ca_dir)]) == 0
    argv = ["ca", "issue", str(ca_dir), "dp.test", "--crl-url", "http://127.0.0.1:1/crl"]
    argv += ["--ocsp-url", "http://127.0.0.1:1/a", "--ocsp-url", "http://127.0.0.1:1/b"]
    assert staplegate_main(argv) == 0
    assert staplegate_main(["ca", "crl", str(ca_dir), "--seconds", "30"]) == 0
    capsys.readouterr()
    leaf = x509.load_pem_x509_certificate((ca_dir / "issued" / "dp.test.pem").read_bytes())
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [d.access_location.value for d in aia] == [
        "http://127.0.0.1:1/a",
        "http://127.0.0.1:1/b",
    ]
    points = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for p in points for n in p.full_name or ()] == ["http://127.0.0.1:1/crl"]
    crl = x509.load_pem_x509_crl((ca_dir / "crl" / "crl.pem").read_bytes())
    assert crl.next_update_utc is not None
    assert crl.next_update_utc - crl.last_update_utc == dt.timedelta(seconds=30)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["issue", "{ca}", "www.test"], "already exists"),
        (["revoke", "{ca}", "www.test", "--reason", "whim"], "unknown revocation reason"),
        (["revoke", "{ca}", "ABCDEF0123"], "was not issued by this CA"),
        (["revoke", "{ca}", "nobody.test"], "no certificate named"),
        (["issue", "{plain}", "www.test"], "not a staplegate CA directory"),
        (["init", "{ca}"], "already holds a CA"),
    ],
)
def test_refusals_are_one_line_naming_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    ca_dir = tmp_path / "ca"
    CertificateAuthority.init(ca_dir).issue("www.test")
    capsys.readouterr()
    words = [w.format(ca=ca_dir, plain=tmp_path) for w in argv]
    assert staplegate_main(["ca", *words]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert expected in lines[0]
    assert str(ca_dir) in lines[0] or str(tmp_path) in lines[0]


def test_refusal_exit_status_in_a_subprocess(tmp_path: Path) -> None:
    result = _run("issue", tmp_path, "www.test")
    assert result.returncode == 1
    assert result.stderr.startswith(f"staplegate ca issue: {tmp_path}: not a staplegate CA")
