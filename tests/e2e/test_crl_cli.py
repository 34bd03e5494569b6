"""`staplegate crl check` as an operator runs it: a subprocess, the real test CA and responder.

The CA is the `pki` fixture's; `staplegate ca issue --crl-url`, `ca revoke` and `ca crl` are
run as commands, and `--fetch` reads the CRL the test responder serves at /crl on 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from staplegate.testpki.pytest_plugin import Pki


def staplegate(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "staplegate", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _issue(pki: Pki, name: str, *extra: str) -> Path:
    crl_url = f"{pki.responder.url}/crl"
    result = staplegate("ca", "issue", pki.directory, name, "--crl-url", crl_url, *extra)
    assert result.returncode == 0, result.stderr
    return pki.directory / "issued" / f"{name}.pem"


def _crl(pki: Pki, *extra: str) -> Path:
    result = staplegate("ca", "crl", pki.directory, *extra)
    assert result.returncode == 0, result.stderr
    return pki.directory / "crl" / "crl.pem"


def _crl_of(directory: Path) -> Path:
    result = staplegate("ca", "crl", directory)
    assert result.returncode == 0, result.stderr
    return directory / "crl" / "crl.pem"


def test_good_then_revoked_after_ca_revoke_and_ca_crl(pki: Pki) -> None:
    bundle = _issue(pki, "www.crl.test", "--no-ocsp-url")
    certificate = x509.load_pem_x509_certificate(bundle.read_bytes())
    assert certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    crl = _crl(pki)

    good = staplegate("crl", "check", bundle, "--crl", crl)
    assert good.returncode == 0, good.stderr
    assert f"{bundle}: good" in good.stdout

    revoke = staplegate("ca", "revoke", pki.directory, "www.crl.test", "--reason", "keyCompromise")
    assert revoke.returncode == 0, revoke.stderr
    crl = _crl(pki)
    revoked = staplegate("crl", "check", bundle, "--crl", crl)
    assert revoked.returncode == 1, revoked.stderr
    assert "REVOKED" in revoked.stdout
    assert "Revocation Reason: keyCompromise" in revoked.stdout


def test_an_expired_crl_gives_no_verdict(pki: Pki) -> None:
    """`ca crl --seconds 60`: current now, expired two minutes from now (the CLI's clock is
    moved with STAPLEGATE_CLOCK_OFFSET, so nothing sleeps)."""
    bundle = _issue(pki, "expired.crl.test")
    crl = _crl(pki, "--seconds", "60")
    assert staplegate("crl", "check", bundle, "--crl", crl, "--skew", "0").returncode == 0
    later = {"STAPLEGATE_CLOCK_OFFSET": "120"}
    result = staplegate("crl", "check", bundle, "--crl", crl, "--skew", "0", env=later)
    assert result.returncode == 2
    assert "Reason: expired" in result.stderr
    # within the skew it is still current: no OCSP-style withdrawal margin
    skewed = staplegate("crl", "check", bundle, "--crl", crl, "--skew", "300", env=later)
    assert skewed.returncode == 0, skewed.stderr


def test_a_crl_from_another_ca_and_a_truncated_file(
    pki: Pki, pki_factory: Callable[..., Pki], tmp_path: Path
) -> None:
    bundle = _issue(pki, "www.crl.test")
    # both test CAs are named "staplegate Test CA": the name matches, the key does not
    other = pki_factory(name="other")
    other_crl = _crl(other)
    result = staplegate("crl", "check", bundle, "--crl", other_crl)
    assert result.returncode == 2
    assert "Reason: signer-key-mismatch" in result.stderr

    renamed = tmp_path / "renamed-ca"
    assert staplegate("ca", "init", renamed, "--name", "Another CA").returncode == 0
    result = staplegate("crl", "check", bundle, "--crl", _crl_of(renamed))
    assert result.returncode == 2
    assert "Reason: wrong-issuer" in result.stderr

    truncated = tmp_path / "truncated.crl"
    der = x509.load_pem_x509_crl(_crl(pki).read_bytes()).public_bytes(Encoding.DER)
    truncated.write_bytes(der[: len(der) // 2])
    result = staplegate("crl", "check", bundle, "--crl", truncated)
    assert result.returncode == 2
    assert "Reason: unparsable" in result.stderr


def test_fetch_from_the_test_responders_crl(pki: Pki) -> None:
    bundle = _issue(
        pki,
        "fetched.crl.test",
        "--ocsp-url",
        "http://127.0.0.1:9/a",
        "--ocsp-url",
        "http://127.0.0.1:9/b",
    )
    certificate = x509.load_pem_x509_certificate(bundle.read_bytes())
    aia = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [d.access_location.value for d in aia] == [
        "http://127.0.0.1:9/a",
        "http://127.0.0.1:9/b",
    ]

    missing = staplegate("crl", "check", bundle, "--fetch")
    assert missing.returncode == 2
    assert "CRL fetch FAILED: http-status" in missing.stderr  # no `ca crl` yet: 404

    _crl(pki)
    good = staplegate("crl", "check", bundle, "--fetch")
    assert good.returncode == 0, good.stderr
    assert f"{pki.responder.url}/crl" in good.stdout

    pki.revoke("fetched.crl.test", reason="superseded")
    _crl(pki)
    revoked = staplegate("crl", "check", bundle)
    assert revoked.returncode == 1, revoked.stderr
    assert "Revocation Reason: superseded" in revoked.stdout
