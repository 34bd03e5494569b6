"""load_certificate: real PEM files in tmp_path, one test per error reason, HAProxy's texts."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from staplegate.certs import (
    CertificateError,
    CertificateErrorReason,
    CertificateSource,
    ExtraFiles,
    IssuerSource,
    KeyAlgorithm,
    expand_bundle,
    load_certificate,
)
from staplegate.ocsp.certid import CertId

from .certs_pki import NOW, OCSP_URI, PASSPHRASE, Pki, bundle, write

ALL = ExtraFiles()


def _error(source: CertificateSource, extra: ExtraFiles = ALL) -> CertificateError:
    with pytest.raises(CertificateError) as caught:
        load_certificate(source, extra=extra, now=NOW)
    return caught.value


# RFC 7919 ffdhe2048, as `openssl genpkey -genparam -algorithm DH -pkeyopt dh_param:ffdhe2048`
# writes it (cryptography deprecates finite-field DH, and the loader only needs to skip it).
DH_PARAMS_PEM = b"""-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
"""


# -- loading what works -------------------------------------------------------------------


def test_full_bundle_loads_leaf_key_chain_and_facts(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.rsa_leaf
    path = write(
        tmp_path / "www.pem",
        bundle(leaf.cert_pem(), leaf.key_pem(), pki.intermediate.cert_pem(), pki.root.cert_pem()),
    )
    cert = load_certificate(CertificateSource.from_path(path), extra=ALL, now=NOW)

    assert cert.name == str(path)
    assert cert.leaf == leaf.cert
    assert cert.chain == (pki.intermediate.cert, pki.root.cert)
    assert cert.names == ("www.example.test", "*.example.test")
    assert cert.key_type.algorithm is KeyAlgorithm.RSA
    assert cert.key_type.bits == 2048
    assert cert.key_type.haproxy_name == "RSA2048"
    assert cert.not_before == leaf.cert.not_valid_before_utc
    assert cert.not_after == leaf.cert.not_valid_after_utc
    assert cert.ocsp_uri == OCSP_URI  # the first OCSP URI, not the second one
    assert cert.must_staple is False
    assert cert.issuer == pki.intermediate.cert
    assert cert.issuer_source is IssuerSource.CHAIN
    assert cert.issuer_path == path
    assert cert.cert_id == CertId.for_certificate(leaf.cert, pki.intermediate.cert)
    assert cert.ocsp is None
    assert cert.sctl_path is None
    assert cert.serial_hex == "0A1B2C3D"
    assert cert.read_paths == (path,)
    assert cert.files.crt == path
    assert cert.files.key == path
    # discovery mode records candidate names even for files that do not exist (spec §3.1.9)
    assert cert.files.ocsp == Path(f"{path}.ocsp")
    assert cert.files.issuer == Path(f"{path}.issuer")
    assert cert.files.sctl == Path(f"{path}.sctl")
    assert cert.warnings == ()


def test_pem_blocks_in_any_order_with_dh_params(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.ecdsa_leaf
    path = write(
        tmp_path / "mixed.pem",
        bundle(
            pki.intermediate.cert_pem(),
            DH_PARAMS_PEM,
            leaf.key_pem(),
            pki.root.cert_pem(),
            leaf.cert_pem(),
        ),
    )
    cert = load_certificate(CertificateSource.from_path(path), extra=ALL, now=NOW)
    assert cert.leaf == leaf.cert
    assert cert.chain == (pki.intermediate.cert, pki.root.cert)
    assert cert.has_dh_params is True
    assert cert.issuer == pki.intermediate.cert
    assert cert.key_type.algorithm is KeyAlgorithm.ECDSA
    assert cert.key_type.curve == "secp256r1"
    assert cert.key_type.haproxy_name == "EC256"
    assert cert.warnings == ()


def test_key_sidecar_is_read_when_pem_has_no_key(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.ecdsa_leaf
    path = write(tmp_path / "site.pem", bundle(leaf.cert_pem(), pki.intermediate.cert_pem()))
    key = write(tmp_path / "site.pem.key", leaf.key_pem())
    cert = load_certificate(CertificateSource.from_path(path), extra=ALL, now=NOW)
    assert cert.leaf == leaf.cert
    assert cert.read_paths == (path, key)
    assert cert.files.key == key


def test_del_ext_strips_crt_for_sidecars(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.ecdsa_leaf
    path = write(tmp_path / "site.crt", leaf.cert_pem())
    key = write(tmp_path / "site.key", leaf.key_pem())
    ocsp = write(tmp_path / "site.ocsp", b"raw bytes")
    issuer = write(tmp_path / "site.issuer", pki.intermediate.cert_pem())
    extra = ExtraFiles(del_ext=True)
    cert = load_certificate(CertificateSource.from_path(path), extra=extra, now=NOW)
    assert cert.read_paths == (path, key, ocsp, issuer)
    assert cert.issuer_source is IssuerSource.ISSUER_SIDECAR
    assert cert.issuer_path == issuer
    assert cert.ocsp is not None
    assert cert.ocsp.path == ocsp


def test_without_del_ext_site_crt_key_is_not_found(pki: Pki, tmp_path: Path) -> None:
    path = write(tmp_path / "site.crt", pki.ecdsa_leaf.cert_pem())
    write(tmp_path / "site.key", pki.ecdsa_leaf.key_pem())
    error = _error(CertificateSource.from_path(path))
    assert error.reason is CertificateErrorReason.NO_PRIVATE_KEY
    assert error.message == f"No Private Key found in '{tmp_path / 'site.crt.key'}'."


def test_ocsp_sidecar_raw_bytes_are_kept_unparsed(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.rsa_leaf
    path = write(tmp_path / "www.pem", bundle(leaf.cert_pem(), leaf.key_pem()))
    ocsp = write(tmp_path / "www.pem.ocsp", b"\x00not DER at all")
    cert = load_certificate(CertificateSource.from_path(path), extra=ALL, now=NOW)
    assert cert.ocsp is not None
    assert cert.ocsp.path == ocsp
    assert cert.ocsp.der == b"\x00not DER at all"
    assert ocsp in cert.read_paths


def test_extra_files_none_reads_no_sidecar(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.rsa_leaf
    path = write(tmp_path / "www.pem", bundle(leaf.cert_pem(), leaf.key_pem()))
    write(tmp_path / "www.pem.ocsp", pki.response(leaf))
    write(tmp_path / "www.pem.issuer", pki.intermediate.cert_pem())
    write(tmp_path / "www.pem.sctl", b"sct")
    extra = ExtraFiles.parse(["none"], del_ext=False)
    cert = load_certificate(CertificateSource.from_path(path), extra=extra, now=NOW)
    assert cert.ocsp is None
    assert cert.issuer is None
    assert cert.sctl_path is None
    assert cert.read_paths == (path,)
    assert (cert.files.ocsp, cert.files.issuer, cert.files.sctl) == (None, None, None)


def test_missing_key_with_key_discovery_disabled_names_the_pem(pki: Pki, tmp_path: Path) -> None:
    path = write(tmp_path / "www.pem", pki.rsa_leaf.cert_pem())
    write(tmp_path / "www.pem.key", pki.rsa_leaf.key_pem())
    error = _error(CertificateSource.from_path(path), ExtraFiles.parse(["ocsp"], False))
    assert error.reason is CertificateErrorReason.NO_PRIVATE_KEY
    assert error.message == f"No Private Key found in '{path}'."


def test_issuer_sidecar_read_without_ocsp_file(pki: Pki, tmp_path: Path) -> None:
    """Divergence: HAProxy reads `.issuer` only when a `.ocsp` was loaded; we always do."""
    leaf = pki.ecdsa_leaf
    path = write(tmp_path / "ec.pem", bundle(leaf.cert_pem(), leaf.key_pem()))
    issuer = write(tmp_path / "ec.pem.issuer", pki.intermediate.cert_pem())
    cert = load_certificate(CertificateSource.from_path(path), extra=ALL, now=NOW)
    assert cert.ocsp is None
    assert cert.issuer == pki.intermediate.cert
    assert cert.issuer_source is IssuerSource.ISSUER_SIDECAR
    assert cert.issuer_path == issuer
    assert cert.cert_id == CertId.for_certificate(leaf.cert, pki.intermediate.cert)


def test_chain_issuer_wins_over_issuer_sidecar(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.ecdsa_leaf
    path = write(
        tmp_path / "ec.pem", bundle(leaf.cert_pem(), leaf.key_pem(), pki.intermediate.cert_pem())
    )
    issuer = write(tmp_path / "ec.pem.issuer", pki.intermediate.cert_pem())
    cert = load_certificate(CertificateSource.from_path(path), extra=ALL, now=NOW)
    assert cert.issuer_source is IssuerSource.CHAIN
    assert cert.issuer_path == path
    assert issuer in cert.read_paths  # read and checked all the same


def test_chain_without_the_issuer_falls_back_to_none(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.ecdsa_leaf
    # the root is in the chain but did not issue the leaf directly
    path = write(tmp_path / "ec.pem", bundle(leaf.cert_pem(), leaf.key_pem(), pki.root.cert_pem()))
    cert = load_certificate(CertificateSource.from_path(path), extra=ALL, now=NOW)
    assert cert.chain == (pki.root.cert,)
    assert cert.issuer is None
    assert cert.issuer_source is IssuerSource.NONE
    assert cert.cert_id is None


def test_wrong_issuer_sidecar_without_ocsp_is_a_warning(pki: Pki, tmp_path: Path) -> None:
    """HAProxy would not read this `.issuer` at all: we say it is wrong, and start."""
    leaf = pki.ecdsa_leaf
    path = write(tmp_path / "ec.pem", bundle(leaf.cert_pem(), leaf.key_pem()))
    issuer = write(tmp_path / "ec.pem.issuer", pki.other_ca.cert_pem())
    cert = load_certificate(CertificateSource.from_path(path), extra=ALL, now=NOW)
    assert cert.issuer is None
    assert cert.issuer_source is IssuerSource.NONE
    assert len(cert.warnings) == 1
    assert cert.warnings[0].startswith(f"'{issuer}' is not an issuer. The file is ignored")


def test_explicit_files_without_discovery(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.ecdsa_leaf
    path = write(tmp_path / "ec.pem", leaf.cert_pem())
    (tmp_path / "keys").mkdir()
    key = write(tmp_path / "keys" / "ec.key", leaf.key_pem())
    der = pki.response(leaf)
    ocsp = write(tmp_path / "ec.der", der)
    issuer = write(tmp_path / "ca.pem", pki.intermediate.cert_pem())
    # sidecars next to the PEM must be ignored: no discovery for keyword lines / crt-store
    write(tmp_path / "ec.pem.ocsp", b"sidecar")
    write(tmp_path / "ec.pem.issuer", pki.other_ca.cert_pem())
    source = CertificateSource(
        name="@store/ec",
        crt_path=path,
        key_path=key,
        ocsp_path=ocsp,
        issuer_path=issuer,
        discover_sidecars=False,
    )
    cert = load_certificate(source, extra=ALL, now=NOW)
    assert cert.name == "@store/ec"
    assert cert.read_paths == (path, key, ocsp, issuer)
    assert cert.issuer_source is IssuerSource.ISSUER_KEYWORD
    assert cert.issuer_path == issuer
    assert cert.ocsp is not None
    assert cert.ocsp.der == der
    assert cert.ocsp.path == ocsp
    assert cert.files.ocsp == ocsp
    assert cert.files.sctl is None
    assert cert.warnings == ()


def test_issuer_keyword_is_not_required_to_be_the_issuer(pki: Pki, tmp_path: Path) -> None:
    """HAProxy does not check the `issuer` keyword file; we use it too, but warn."""
    leaf = pki.ecdsa_leaf
    path = write(tmp_path / "ec.pem", bundle(leaf.cert_pem(), leaf.key_pem()))
    issuer = write(tmp_path / "ca.pem", pki.other_ca.cert_pem())
    source = CertificateSource(
        name=str(path), crt_path=path, issuer_path=issuer, discover_sidecars=False
    )
    cert = load_certificate(source, extra=ALL, now=NOW)
    assert cert.issuer == pki.other_ca.cert
    assert cert.issuer_source is IssuerSource.ISSUER_KEYWORD
    assert len(cert.warnings) == 1
    assert "did not issue" in cert.warnings[0]
    assert str(issuer) in cert.warnings[0]


def test_explicit_key_path_overrides_pem_key(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.ecdsa_leaf
    path = write(tmp_path / "ec.pem", bundle(leaf.cert_pem(), pki.no_uri_leaf.key_pem()))
    key = write(tmp_path / "ec.key", leaf.key_pem())
    source = CertificateSource(name="ec", crt_path=path, key_path=key, discover_sidecars=False)
    cert = load_certificate(source, extra=ALL, now=NOW)
    assert cert.leaf == leaf.cert
    assert cert.files.key == key


def test_sctl_is_noted_with_a_warning(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.ecdsa_leaf
    path = write(tmp_path / "ec.pem", bundle(leaf.cert_pem(), leaf.key_pem()))
    sctl = write(tmp_path / "ec.pem.sctl", b"\x00\x00")
    cert = load_certificate(CertificateSource.from_path(path), extra=ALL, now=NOW)
    assert cert.sctl_path == sctl
    assert cert.warnings == (
        f"'{sctl}': staplegate does not send signed certificate timestamps; file ignored.",
    )


def test_must_staple_is_detected(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.must_staple_leaf
    path = write(tmp_path / "ms.pem", bundle(leaf.cert_pem(), leaf.key_pem()))
    assert load_certificate(CertificateSource.from_path(path), extra=ALL, now=NOW).must_staple


def test_self_signed_leaf_has_no_issuer(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.self_signed
    path = write(tmp_path / "self.pem", bundle(leaf.cert_pem(), leaf.key_pem()))
    cert = load_certificate(CertificateSource.from_path(path), extra=ALL, now=NOW)
    assert cert.issuer is None
    assert cert.cert_id is None
    assert cert.chain == ()


def test_expired_certificate_loads_with_a_warning(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.expired_leaf
    path = write(tmp_path / "old.pem", bundle(leaf.cert_pem(), leaf.key_pem()))
    cert = load_certificate(CertificateSource.from_path(path), extra=ALL, now=NOW)
    assert cert.leaf == leaf.cert
    expiry = leaf.cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert cert.warnings == (
        f"'{path}': certificate expired on {expiry} (notAfter); clients will reject it: renew it.",
    )


def test_not_yet_valid_certificate_loads_with_a_warning(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.future_leaf
    path = write(tmp_path / "soon.pem", bundle(leaf.cert_pem(), leaf.key_pem()))
    cert = load_certificate(CertificateSource.from_path(path), extra=ALL, now=NOW)
    start = leaf.cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(cert.warnings) == 1
    assert cert.warnings[0].startswith(f"'{path}': certificate is not valid before {start}")


def test_world_readable_key_file_gets_a_warning(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.ecdsa_leaf
    path = write(tmp_path / "ec.pem", bundle(leaf.cert_pem(), leaf.key_pem()), mode=0o644)
    cert = load_certificate(CertificateSource.from_path(path), extra=ALL, now=NOW)
    assert cert.warnings == (
        f"'{path}' holds a private key and is accessible to every user (mode 0644): "
        "chmod 600 (or 640 for a trusted group) it.",
    )


def test_group_readable_key_file_is_fine(pki: Pki, tmp_path: Path) -> None:
    """Debian's ssl-cert convention: keys 0640, readable by a trusted group."""
    leaf = pki.ecdsa_leaf
    path = write(tmp_path / "ec.pem", bundle(leaf.cert_pem(), leaf.key_pem()), mode=0o640)
    cert = load_certificate(CertificateSource.from_path(path), extra=ALL, now=NOW)
    assert cert.warnings == ()


def test_extra_private_keys_and_unknown_blocks_warn(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.ecdsa_leaf
    csr = b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
    path = write(
        tmp_path / "ec.pem",
        bundle(leaf.cert_pem(), leaf.key_pem(), pki.no_uri_leaf.key_pem(), csr),
    )
    cert = load_certificate(CertificateSource.from_path(path), extra=ALL, now=NOW)
    assert cert.leaf == leaf.cert
    assert cert.warnings == (
        f"'{path}': ignored PEM block(s) 'CERTIFICATE REQUEST'.",
        f"'{path}' holds 2 private keys; only the first is used.",
    )


def test_now_must_be_timezone_aware(pki: Pki, tmp_path: Path) -> None:
    path = write(tmp_path / "ec.pem", bundle(pki.ecdsa_leaf.cert_pem(), pki.ecdsa_leaf.key_pem()))
    with pytest.raises(ValueError, match="timezone-aware"):
        load_certificate(CertificateSource.from_path(path), extra=ALL, now=NOW.replace(tzinfo=None))


def test_private_key_never_in_repr_or_str(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.rsa_leaf
    path = write(tmp_path / "www.pem", bundle(leaf.cert_pem(), leaf.key_pem()))
    write(tmp_path / "www.pem.ocsp", pki.response(leaf))
    cert = load_certificate(CertificateSource.from_path(path), extra=ALL, now=NOW)
    key = cert.private_key
    assert isinstance(key, rsa.RSAPrivateKey)
    numbers = key.private_numbers()
    secrets = [
        str(numbers.d),
        f"{numbers.d:x}",
        f"{numbers.p:x}",
        "PRIVATE KEY",
        "private_key=",
        leaf.key_pem().decode().splitlines()[1][:40],
        "RSAPrivateKey",
    ]
    for text in (repr(cert), str(cert)):
        for secret in secrets:
            assert secret not in text
    assert "www.example.test" in str(cert)
    assert str(path) in repr(cert)


# -- multi-certificate bundles ------------------------------------------------------------


def test_expand_bundle_loads_members_independently(pki: Pki, tmp_path: Path) -> None:
    base = tmp_path / "site.pem"
    rsa_leaf, ec_leaf = pki.rsa_leaf, pki.ecdsa_leaf
    write(Path(f"{base}.rsa"), bundle(rsa_leaf.cert_pem(), rsa_leaf.key_pem()))
    write(Path(f"{base}.ecdsa"), bundle(ec_leaf.cert_pem(), ec_leaf.key_pem()))
    ocsp = write(Path(f"{base}.ecdsa.ocsp"), b"ec staple")
    members = expand_bundle(CertificateSource.from_path(base), ALL)
    assert [m.name for m in members] == [f"{base}.rsa", f"{base}.ecdsa"]
    loaded = [load_certificate(m, extra=ALL, now=NOW) for m in members]
    assert [c.key_type.algorithm for c in loaded] == [KeyAlgorithm.RSA, KeyAlgorithm.ECDSA]
    assert loaded[0].ocsp is None
    assert loaded[1].ocsp is not None
    assert loaded[1].ocsp.path == ocsp


def test_expand_bundle_keeps_an_existing_path_or_disabled_bundles(pki: Pki, tmp_path: Path) -> None:
    base = tmp_path / "site.pem"
    write(Path(f"{base}.rsa"), pki.rsa_leaf.cert_pem())
    source = CertificateSource.from_path(base)
    assert expand_bundle(source, ExtraFiles(bundle=False)) == (source,)
    keyword_source = CertificateSource(name="x", crt_path=base, discover_sidecars=False)
    assert expand_bundle(keyword_source, ALL) == (keyword_source,)
    write(base, pki.rsa_leaf.cert_pem())
    assert expand_bundle(source, ALL) == (source,)
    missing = CertificateSource.from_path(tmp_path / "nothing.pem")
    assert expand_bundle(missing, ALL) == (missing,)


# -- an openssl-made bundle ---------------------------------------------------------------


@pytest.mark.openssl
def test_openssl_made_bundle_loads(tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    assert openssl is not None, "the openssl command is required (apt-get install openssl)"
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-days",
            "2",
            "-subj",
            "/CN=openssl.example.test",
            "-addext",
            "subjectAltName=DNS:openssl.example.test,DNS:*.openssl.example.test",
        ],
        check=True,
        capture_output=True,
    )
    # openssl's usual order: key first, then the certificate
    path = write(tmp_path / "bundle.pem", key.read_bytes() + crt.read_bytes())
    issued = x509.load_pem_x509_certificate(crt.read_bytes())
    now = issued.not_valid_before_utc + dt.timedelta(hours=1)
    cert = load_certificate(CertificateSource.from_path(path), extra=ALL, now=now)
    assert cert.leaf == issued
    assert cert.names == ("openssl.example.test", "*.openssl.example.test")
    assert cert.key_type.haproxy_name == "EC256"
    assert cert.issuer is None  # self-signed: HAProxy never uses the leaf as its own issuer
    assert cert.warnings == ()


# -- one test per error reason ------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.pem"
    error = _error(CertificateSource.from_path(path))
    assert error.reason is CertificateErrorReason.MISSING_FILE
    assert error.path == path
    assert error.message == (
        f"unable to stat SSL certificate from file '{path}' : No such file or directory."
    )
    assert "crt-base" in str(error)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    error = _error(CertificateSource.from_path(tmp_path))
    assert error.reason is CertificateErrorReason.UNREADABLE_FILE
    assert error.message == f"unable to load certificate from file '{tmp_path}': Is a directory."


@pytest.fixture
def shared_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory an unprivileged user can traverse (pytest's tmp dirs are 0700 for root)."""
    if os.geteuid() != 0:
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="staplegate-certs-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


@contextlib.contextmanager
def _unprivileged() -> Iterator[None]:
    """Drop the effective uid/gid to `nobody` for the block (root ignores file modes).

    The real uid stays 0, so the original identity comes back afterwards; the kernel, not a
    fake, refuses the read inside the block.
    """
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def _load_denied(source: CertificateSource, denied: Path) -> CertificateError:
    """Load `source` with `denied` unreadable to the loading user; return the error."""
    for path in denied.parent.iterdir():
        path.chmod(0o644)
    denied.chmod(0o000 if os.geteuid() != 0 else 0o600)
    with _unprivileged(), pytest.raises(CertificateError) as caught:
        load_certificate(source, extra=ALL, now=NOW)
    return caught.value


def test_unreadable_file_permission_denied(pki: Pki, shared_dir: Path) -> None:
    path = write(shared_dir / "www.pem", bundle(pki.rsa_leaf.cert_pem(), pki.rsa_leaf.key_pem()))
    error = _load_denied(CertificateSource.from_path(path), path)
    assert error.reason is CertificateErrorReason.UNREADABLE_FILE
    assert error.path == path
    assert error.message == f"unable to load certificate from file '{path}': Permission denied."


def test_unreadable_issuer_sidecar_with_ocsp(pki: Pki, shared_dir: Path) -> None:
    leaf = pki.rsa_leaf
    path = write(shared_dir / "www.pem", bundle(leaf.cert_pem(), leaf.key_pem()))
    write(shared_dir / "www.pem.ocsp", pki.response(leaf))
    issuer = write(shared_dir / "www.pem.issuer", pki.intermediate.cert_pem())
    error = _load_denied(CertificateSource.from_path(path), issuer)
    assert error.reason is CertificateErrorReason.ISSUER_UNREADABLE
    assert error.path == issuer
    assert error.message == f"'{issuer}' cannot be read or parsed: Permission denied."


def test_garbage_is_not_pem(tmp_path: Path) -> None:
    path = write(tmp_path / "garbage.pem", b"this is not a certificate\n\x00\xff")
    error = _error(CertificateSource.from_path(path))
    assert error.reason is CertificateErrorReason.NOT_PEM
    assert error.message == f"unable to load certificate from file '{path}': no PEM data found."


def test_der_certificate_is_not_pem_and_says_how_to_convert(pki: Pki, tmp_path: Path) -> None:
    path = write(tmp_path / "www.der", pki.rsa_leaf.cert.public_bytes(serialization.Encoding.DER))
    error = _error(CertificateSource.from_path(path))
    assert error.reason is CertificateErrorReason.NOT_PEM
    assert error.hint is not None
    assert "openssl x509 -inform DER" in error.hint


def test_damaged_certificate_block(pki: Pki, tmp_path: Path) -> None:
    damaged = b"-----BEGIN CERTIFICATE-----\nMIIBdGFtYWdlZA==\n-----END CERTIFICATE-----\n"
    path = write(tmp_path / "bad.pem", bundle(damaged, pki.ecdsa_leaf.key_pem()))
    error = _error(CertificateSource.from_path(path))
    assert error.reason is CertificateErrorReason.MALFORMED_PEM
    assert error.message.startswith(
        f"unable to load certificate from file '{path}': "
        "PEM block 1 ('CERTIFICATE') is not a valid certificate"
    )


def test_no_certificate_in_file(pki: Pki, tmp_path: Path) -> None:
    path = write(tmp_path / "key-only.pem", pki.ecdsa_leaf.key_pem())
    error = _error(CertificateSource.from_path(path))
    assert error.reason is CertificateErrorReason.NO_CERTIFICATE
    assert error.message == (
        f"unable to load certificate from file '{path}': no certificate found."
    )


def test_no_private_key_found(pki: Pki, tmp_path: Path) -> None:
    path = write(tmp_path / "www.pem", pki.rsa_leaf.cert_pem())
    error = _error(CertificateSource.from_path(path))
    assert error.reason is CertificateErrorReason.NO_PRIVATE_KEY
    assert error.path == Path(f"{path}.key")
    assert error.message == f"No Private Key found in '{path}.key'."


def test_key_sidecar_without_a_key(pki: Pki, tmp_path: Path) -> None:
    path = write(tmp_path / "www.pem", pki.rsa_leaf.cert_pem())
    write(tmp_path / "www.pem.key", pki.rsa_leaf.cert_pem())
    error = _error(CertificateSource.from_path(path))
    assert error.reason is CertificateErrorReason.NO_PRIVATE_KEY
    assert error.message == f"No Private Key found in '{path}.key'."


def test_key_certificate_mismatch(pki: Pki, tmp_path: Path) -> None:
    path = write(tmp_path / "www.pem", bundle(pki.rsa_leaf.cert_pem(), pki.ecdsa_leaf.key_pem()))
    error = _error(CertificateSource.from_path(path))
    assert error.reason is CertificateErrorReason.KEY_MISMATCH
    assert error.path == path
    assert error.message == (
        f"inconsistencies between private key and certificate loaded '{path}'."
    )


def test_key_sidecar_mismatch(pki: Pki, tmp_path: Path) -> None:
    path = write(tmp_path / "www.pem", pki.rsa_leaf.cert_pem())
    write(tmp_path / "www.pem.key", pki.ecdsa_leaf.key_pem())
    error = _error(CertificateSource.from_path(path))
    assert error.reason is CertificateErrorReason.KEY_MISMATCH
    assert error.message == (
        f"inconsistencies between private key and certificate loaded '{path}'."
    )


def test_encrypted_private_key(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.ecdsa_leaf
    path = write(tmp_path / "ec.pem", bundle(leaf.cert_pem(), leaf.key_pem(PASSPHRASE)))
    error = _error(CertificateSource.from_path(path))
    assert error.reason is CertificateErrorReason.ENCRYPTED_KEY
    assert error.path == path
    assert "the private key is encrypted" in error.message
    assert str(path) in error.message
    assert error.hint is not None
    assert "unencrypted private key" in error.hint
    assert "passphrase" in error.hint


def test_encrypted_legacy_key_in_key_sidecar(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.ecdsa_leaf
    legacy = leaf.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(PASSPHRASE),
    )
    assert b"Proc-Type: 4,ENCRYPTED" in legacy
    path = write(tmp_path / "ec.pem", leaf.cert_pem())
    key = write(tmp_path / "ec.pem.key", legacy)
    error = _error(CertificateSource.from_path(path))
    assert error.reason is CertificateErrorReason.ENCRYPTED_KEY
    assert error.path == key


def test_issuer_sidecar_not_the_issuer_with_ocsp(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.rsa_leaf
    path = write(tmp_path / "www.pem", bundle(leaf.cert_pem(), leaf.key_pem()))
    write(tmp_path / "www.pem.ocsp", pki.response(leaf))
    issuer = write(tmp_path / "www.pem.issuer", pki.other_ca.cert_pem())
    error = _error(CertificateSource.from_path(path))
    assert error.reason is CertificateErrorReason.ISSUER_NOT_ISSUER
    assert error.path == issuer
    assert error.message == f"'{issuer}' is not an issuer."


def test_issuer_sidecar_garbage_with_ocsp(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.rsa_leaf
    path = write(tmp_path / "www.pem", bundle(leaf.cert_pem(), leaf.key_pem()))
    write(tmp_path / "www.pem.ocsp", pki.response(leaf))
    issuer = write(tmp_path / "www.pem.issuer", b"garbage")
    error = _error(CertificateSource.from_path(path))
    assert error.reason is CertificateErrorReason.ISSUER_UNREADABLE
    assert error.message == f"'{issuer}' cannot be read or parsed."


def test_issuer_keyword_file_missing(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.rsa_leaf
    path = write(tmp_path / "www.pem", bundle(leaf.cert_pem(), leaf.key_pem()))
    issuer = tmp_path / "absent-ca.pem"
    source = CertificateSource(
        name=str(path), crt_path=path, issuer_path=issuer, discover_sidecars=False
    )
    error = _error(source)
    assert error.reason is CertificateErrorReason.ISSUER_UNREADABLE
    assert error.message == f"'{issuer}' cannot be read or parsed: No such file or directory."


def test_ocsp_sidecar_unreadable(pki: Pki, tmp_path: Path) -> None:
    leaf = pki.rsa_leaf
    path = write(tmp_path / "www.pem", bundle(leaf.cert_pem(), leaf.key_pem()))
    ocsp = tmp_path / "www.pem.ocsp"
    ocsp.mkdir()  # exists, cannot be read as a file
    error = _error(CertificateSource.from_path(path))
    assert error.reason is CertificateErrorReason.OCSP_UNREADABLE
    assert error.path == ocsp
    assert error.message == f"Error opening OCSP response file '{ocsp}': Is a directory."


# -- what staplegate's own test CA writes -------------------------------------------------


def test_testpki_bundle_and_issuer_sidecar_load(tmp_path: Path) -> None:
    from staplegate.testpki.ca import CertificateAuthority

    ca = CertificateAuthority.init(tmp_path / "ca", intermediate=True, now=NOW)
    issued = ca.issue("www.example.test", must_staple=True, not_before=NOW, days=30)
    cert = load_certificate(CertificateSource.from_path(issued.bundle_path), extra=ALL, now=NOW)
    assert cert.leaf == issued.certificate
    assert cert.issuer == issued.issuer
    assert cert.issuer_source is IssuerSource.CHAIN
    assert issued.issuer_path in cert.read_paths
    assert cert.must_staple
    assert cert.ocsp_uri == ca.default_ocsp_url
    assert cert.cert_id == CertId.for_certificate(issued.certificate, issued.issuer)
    assert cert.warnings == ()
