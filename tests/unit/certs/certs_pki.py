"""Real certificates, keys and OCSP responses for the certificate store's tests.

Built with cryptography, no mocks: a root CA, an intermediate that issues the leaves, an
unrelated CA, RSA and ECDSA leaves with and without an OCSP URI, a must-staple leaf, an
expired one, a not-yet-valid one and a self-signed one. Key generation is the slow part, so
one `Pki` is built per test session; tests write the files they need into `tmp_path`.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
OCSP_URI = "http://ocsp.certs.test:8080/ocsp"
PASSPHRASE = b"correct horse battery staple"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Issued:
    """A private key and the certificate for it."""

    key: PrivateKey
    cert: x509.Certificate

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, passphrase: bytes | None = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def issue(
    subject: str,
    key: PrivateKey,
    *,
    issuer: Issued | None = None,
    serial: int,
    ca: bool = False,
    ocsp_uri: str | None = None,
    dns_names: tuple[str, ...] = (),
    must_staple: bool = False,
    not_before: dt.datetime = NOW - dt.timedelta(days=30),
    not_after: dt.datetime = NOW + dt.timedelta(days=60),
) -> Issued:
    """Sign a certificate for `key` (self-signed without `issuer`)."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.cert.subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False
        )
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), False
        )
    if ocsp_uri is not None:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier("http://ca.certs.test/ca.crt"),
                    ),
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_uri)
                    ),
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier("http://second.certs.test"),
                    ),
                ]
            ),
            False,
        )
    if must_staple:
        builder = builder.add_extension(
            x509.TLSFeature([x509.TLSFeatureType.status_request]), False
        )
    signer = issuer.key if issuer else key
    return Issued(key, builder.sign(signer, hashes.SHA256()))


def _ec() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class Pki:
    root: Issued
    intermediate: Issued
    other_ca: Issued
    rsa_leaf: Issued
    ecdsa_leaf: Issued
    no_uri_leaf: Issued
    must_staple_leaf: Issued
    expired_leaf: Issued
    future_leaf: Issued
    self_signed: Issued

    @classmethod
    def build(cls) -> Pki:
        root = issue("Certs Test Root", _ec(), serial=1, ca=True)
        intermediate = issue("Certs Test Intermediate", _ec(), issuer=root, serial=2, ca=True)
        other_ca = issue("Certs Other CA", _ec(), serial=3, ca=True)
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(
            root=root,
            intermediate=intermediate,
            other_ca=other_ca,
            rsa_leaf=issue(
                "www.example.test",
                rsa_key,
                issuer=intermediate,
                serial=0x0A1B2C3D,
                ocsp_uri=OCSP_URI,
                dns_names=("www.example.test", "*.example.test"),
            ),
            ecdsa_leaf=issue(
                "ec.example.test",
                _ec(),
                issuer=intermediate,
                serial=0x1001,
                ocsp_uri=OCSP_URI,
                dns_names=("ec.example.test",),
            ),
            no_uri_leaf=issue("nouri.example.test", _ec(), issuer=intermediate, serial=0x1002),
            must_staple_leaf=issue(
                "staple.example.test",
                _ec(),
                issuer=intermediate,
                serial=0x1003,
                ocsp_uri=OCSP_URI,
                must_staple=True,
            ),
            expired_leaf=issue(
                "old.example.test",
                _ec(),
                issuer=intermediate,
                serial=0x1004,
                ocsp_uri=OCSP_URI,
                not_before=NOW - dt.timedelta(days=400),
                not_after=NOW - dt.timedelta(days=10),
            ),
            future_leaf=issue(
                "soon.example.test",
                _ec(),
                issuer=intermediate,
                serial=0x1005,
                ocsp_uri=OCSP_URI,
                not_before=NOW + dt.timedelta(days=2),
                not_after=NOW + dt.timedelta(days=90),
            ),
            self_signed=issue("self.example.test", _ec(), serial=0x1006, ocsp_uri=OCSP_URI),
        )

    def response(
        self,
        leaf: Issued,
        *,
        signer: Issued | None = None,
        this_update: dt.datetime = NOW - dt.timedelta(hours=1),
        next_update: dt.datetime | None = NOW + dt.timedelta(days=7),
    ) -> bytes:
        """A `good` OCSP response DER for `leaf`, signed by the intermediate by default."""
        signer = signer or self.intermediate
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response(
                cert=leaf.cert,
                issuer=self.intermediate.cert,
                algorithm=hashes.SHA1(),
                cert_status=ocsp.OCSPCertStatus.GOOD,
                this_update=this_update,
                next_update=next_update,
                revocation_time=None,
                revocation_reason=None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, signer.cert)
        )
        return builder.sign(signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    """Write `data` to `path` with `mode` (0600 by default: these files hold keys)."""
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


def bundle(*parts: bytes) -> bytes:
    """Concatenate PEM parts into one file's content."""
    return b"".join(parts)
