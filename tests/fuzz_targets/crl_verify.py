"""Fuzz target: the CRL verifier on mutated real CRLs (issue 19).

A CRL is untrusted bytes (a file, or whatever a distribution point's server sent). Two
properties, for any input:

- only `CrlError` escapes `check_certificate` (cryptography parses names, entries and
  extensions lazily; any of them may raise deep inside);
- an accepted CRL's signed part (tbsCertList) is byte for byte one the CA signed (a seed's),
  and the verdict is that seed's: an altered signed part that verifies raises `Disagreement`.

The seeds are deterministic (Ed25519 signatures, fixed keys, serials and times): a CRL that
does not list the leaf, one that revokes it with a reason, one with an issuing distribution
point, a delta CRL, an expired one, one from another CA, and the PEM form. (cryptography
cannot build a CRL without nextUpdate.)
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from staplegate.crl.verify import CrlError, CrlStatus, check_certificate, verify_crl
from tests.fuzz_targets import Disagreement

NAME = "crl_verify"

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
CRL_URL = "http://127.0.0.1:8080/crl"
LEAF_SERIAL = 0x1234
OTHER_SERIAL = 0x777


@dataclass(frozen=True)
class Pki:
    ca_key: ed25519.Ed25519PrivateKey
    ca: x509.Certificate
    other_key: ed25519.Ed25519PrivateKey
    other_ca: x509.Certificate
    leaf: x509.Certificate


def _key(seed: int) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(name: str, key: ed25519.Ed25519PrivateKey, serial: int) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOW - dt.timedelta(days=300))
        .not_valid_after(NOW + dt.timedelta(days=3000))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, None)
    )


@functools.cache
def pki() -> Pki:
    ca_key, other_key, leaf_key = _key(1), _key(2), _key(3)
    ca = _ca("fuzz CRL CA", ca_key, 1)
    point = x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(CRL_URL)],
        relative_name=None,
        reasons=None,
        crl_issuer=None,
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("www.test"))
        .issuer_name(ca.subject)
        .public_key(leaf_key.public_key())
        .serial_number(LEAF_SERIAL)
        .not_valid_before(NOW - dt.timedelta(days=30))
        .not_valid_after(NOW + dt.timedelta(days=60))
        .add_extension(x509.CRLDistributionPoints([point]), critical=False)
        .sign(ca_key, None)
    )
    return Pki(ca_key, ca, other_key, _ca("fuzz other CA", other_key, 2), leaf)


def build_crl(
    *,
    revoked: tuple[int, ...] = (OTHER_SERIAL,),
    reason: x509.ReasonFlags | None = x509.ReasonFlags.key_compromise,
    this_update: dt.datetime = NOW - dt.timedelta(hours=1),
    next_update: dt.datetime | None = NOW + dt.timedelta(days=1),
    other_ca: bool = False,
    delta: bool = False,
    idp_url: str | None = None,
    number: int = 7,
) -> bytes:
    """A DER CRL signed by the fuzz CA (or the other CA), listing `revoked`."""
    world = pki()
    key, issuer = (world.other_key, world.other_ca) if other_ca else (world.ca_key, world.ca)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(this_update)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
    )
    if next_update is not None:
        builder = builder.next_update(next_update)
    if delta:
        builder = builder.add_extension(x509.DeltaCRLIndicator(number - 1), critical=True)
    if idp_url is not None:
        point = x509.IssuingDistributionPoint(
            full_name=[x509.UniformResourceIdentifier(idp_url)],
            relative_name=None,
            only_contains_user_certs=False,
            only_contains_ca_certs=False,
            only_some_reasons=None,
            indirect_crl=False,
            only_contains_attribute_certs=False,
        )
        builder = builder.add_extension(point, critical=True)
    for serial in revoked:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(NOW - dt.timedelta(hours=2))
        )
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(key, None).public_bytes(serialization.Encoding.DER)


@functools.cache
def _seed_list() -> tuple[bytes, ...]:
    good = build_crl()
    pem = x509.load_der_x509_crl(good).public_bytes(serialization.Encoding.PEM)
    return (
        good,
        build_crl(revoked=(OTHER_SERIAL, LEAF_SERIAL)),
        build_crl(revoked=(LEAF_SERIAL,), reason=None),
        build_crl(idp_url=CRL_URL),
        build_crl(delta=True),
        build_crl(next_update=NOW - dt.timedelta(hours=1), this_update=NOW - dt.timedelta(days=2)),
        build_crl(other_ca=True),
        pem,
    )


def seeds() -> list[bytes]:
    return list(_seed_list())


@functools.cache
def _accepted_seeds() -> dict[bytes, CrlStatus]:
    """tbsCertList -> verdict, for every seed the verifier accepts unaltered."""
    world = pki()
    accepted: dict[bytes, CrlStatus] = {}
    for seed in _seed_list():
        try:
            verified = verify_crl(seed, world.ca, now=NOW)
            accepted[verified.crl.tbs_certlist_bytes] = verified.verdict_for(world.leaf).status
        except CrlError:
            continue
    return accepted


def run_one(data: bytes) -> None:
    world = pki()
    try:
        verdict = check_certificate(data, world.leaf, world.ca, now=NOW)
    except CrlError:
        return
    tbs = x509.load_der_x509_crl(data) if not data.lstrip().startswith(b"-----") else None
    signed = (
        tbs.tbs_certlist_bytes
        if tbs is not None
        else x509.load_pem_x509_crl(data.lstrip()).tbs_certlist_bytes
    )
    expected = _accepted_seeds().get(signed)
    if expected is None:
        raise Disagreement(f"an altered CRL was accepted: {verdict}")
    if verdict.status is not expected:
        raise Disagreement(f"verdict {verdict.status} for a seed whose verdict is {expected}")
