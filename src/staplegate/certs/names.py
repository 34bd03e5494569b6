"""Host names a certificate serves, and HAProxy's wildcard matching rule for SNI.

HAProxy indexes a certificate under every DNS subjectAltName and every subject CN (when no
crt-list filter says otherwise); a `*.` name is a wildcard covering exactly one label.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

#: OpenSSL's short names (OBJ_nid2sn) for the name attributes certificates carry, as its
#: "oneline" form prints them (`/C=FR/O=Org/CN=name`); another attribute prints as its OID.
OPENSSL_SHORT_NAMES: dict[x509.ObjectIdentifier, str] = {
    NameOID.COMMON_NAME: "CN",
    NameOID.COUNTRY_NAME: "C",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.USER_ID: "UID",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.SURNAME: "SN",
    NameOID.GIVEN_NAME: "GN",
    NameOID.TITLE: "title",
}


def certificate_names(certificate: x509.Certificate) -> tuple[str, ...]:
    """DNS SANs then subject CNs, in certificate order, without duplicates, wildcards kept."""
    names: list[str] = []
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        pass
    else:
        names.extend(san.value.get_values_for_type(x509.DNSName))
    for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        value = attribute.value
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        names.append(value)
    seen: set[str] = set()
    unique: list[str] = []
    for name in names:
        key = name.lower()
        if key not in seen:
            seen.add(key)
            unique.append(name)
    return tuple(unique)


def _normalise(name: str) -> str:
    return name.rstrip(".").lower()


def names_match(pattern: str, hostname: str) -> bool:
    """True when certificate name `pattern` covers `hostname` (case-insensitive).

    `*.a.b` covers `x.a.b` only: not `a.b` (no label) and not `x.y.a.b` (two labels). A `*`
    anywhere else is an ordinary character, as in HAProxy's SNI tree.
    """
    pattern, hostname = _normalise(pattern), _normalise(hostname)
    if not pattern or not hostname:
        return False
    if not pattern.startswith("*."):
        return pattern == hostname
    first, dot, rest = hostname.partition(".")
    return bool(first) and bool(dot) and rest == pattern[2:]
