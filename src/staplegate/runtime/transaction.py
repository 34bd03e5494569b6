"""Certificate transactions (`set/commit/abort ssl cert`): payloads in, a `LoadedCertificate` out.

Theory of operation (HAProxy's; docs/reference/runtime-api.md). The first
`set ssl cert NAME[.ext] <<` opens the one transaction (HAProxy allows one at a time), starting
from the live store; each payload replaces one part: no extension = a PEM bundle (certificate,
chain, optionally the key), `.key` = a PEM key, `.issuer` = a PEM issuer, `.ocsp` = a base64 DER
response, `.sctl` = accepted and ignored (staplegate sends no SCTs). As in HAProxy, a PEM payload
clears the transaction's issuer and OCSP response, so send `.issuer`/`.ocsp` after it. `build()`
then makes the certificate the way the loader does for files (certs/loader.py), from bytes:

- key: from the PEM payload, else the `.key` payload, else the live key when it matches the
  new leaf (certbot `--reuse-key` renewals send only the certificate);
- leaf: the certificate matching the key; the other certificates are the chain;
- issuer (for the CertId): a chain certificate that issued the leaf, else the `.issuer`
  payload, else the live issuer when it issued the new leaf (same CA renewal);
- the CertId is recomputed from the new leaf, so a renewed certificate never keeps the old
  one's OCSP entry (HAProxy issue #2319).

Errors are `TransactionError`s carrying HAProxy's text; key material never appears in them.
"""

from __future__ import annotations

import base64
import binascii
import enum
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from staplegate.certs import (
    CertificateFiles,
    IssuerSource,
    LoadedCertificate,
    OcspFile,
    issued_by,
)
from staplegate.certs.loader import assemble_certificate, split_leaf
from staplegate.certs.pem import PemError, parse_pem


class PayloadKind(enum.Enum):
    """What a `set ssl cert NAME<ext>` payload holds, by the name's extension."""

    PEM = ""
    KEY = ".key"
    ISSUER = ".issuer"
    OCSP = ".ocsp"
    SCTL = ".sctl"


def split_name(argument: str) -> tuple[str, PayloadKind]:
    """`site.pem.ocsp` -> (`site.pem`, OCSP); a name without known extension is a PEM."""
    for kind in (PayloadKind.KEY, PayloadKind.ISSUER, PayloadKind.OCSP, PayloadKind.SCTL):
        if argument.endswith(kind.value) and len(argument) > len(kind.value):
            return argument[: -len(kind.value)], kind
    return argument, PayloadKind.PEM


class TransactionError(Exception):
    """A payload or a build failed; `str()` is the answer text (HAProxy's wording)."""


@dataclass
class Transaction:
    """The open transaction for store `name` (mutable: payloads arrive one by one)."""

    name: str
    live: LoadedCertificate | None
    pem: bytes | None = field(default=None, repr=False)
    key_pem: bytes | None = field(default=None, repr=False)
    issuer_pem: bytes | None = None
    ocsp_der: bytes | None = field(default=None, repr=False)
    sctl: bytes | None = None

    def __post_init__(self) -> None:
        live = self.live
        if live is not None and live.ocsp is not None:
            self.ocsp_der = live.ocsp.der

    def apply(self, kind: PayloadKind, payload: str) -> None:
        """Record one payload; raise TransactionError when it cannot be read."""
        data = payload.encode("utf-8", errors="replace")
        if kind is PayloadKind.OCSP:
            text = "".join(payload.split())
            try:
                der = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError) as exc:
                # verbatim HAProxy (no separator between the two messages)
                raise TransactionError(
                    "Error reading OCSP response in base64 formatCan't load the payload"
                ) from exc
            self.ocsp_der = der
            return
        if kind is PayloadKind.SCTL:
            self.sctl = data
            return
        try:
            contents = parse_pem(data)
        except PemError as exc:
            raise TransactionError(f"unable to load the payload: {exc.detail}.") from exc
        if kind is PayloadKind.PEM:
            if not contents.certificates:
                raise TransactionError("unable to load the payload: no certificate found.")
            self.pem = data
            # HAProxy: a PEM payload clears the OCSP response, issuer and SCTL sent before it
            self.issuer_pem = None
            self.ocsp_der = None
            self.sctl = None
        elif kind is PayloadKind.KEY:
            if not contents.keys:
                raise TransactionError("unable to load the payload: no private key found.")
            self.key_pem = data
        elif kind is PayloadKind.ISSUER:
            if not contents.certificates:
                raise TransactionError("unable to load the payload: no certificate found.")
            self.issuer_pem = data

    def build(self) -> LoadedCertificate:
        """The certificate this transaction describes (see the module docstring)."""
        live = self.live
        if self.pem is None:
            if live is None:
                raise TransactionError(f"certificate '{self.name}' is empty!")
            leaf, chain, key = live.leaf, live.chain, live.private_key
            contents_keys: tuple[PrivateKeyTypes, ...] = ()
        else:
            contents = parse_pem(self.pem)
            contents_keys = contents.keys
            key = self._key(contents_keys)
            leaf, chain = _split_leaf(contents.certificates, key, self.name)
        if self.key_pem is not None and not contents_keys:
            key = parse_pem(self.key_pem).keys[0]
            leaf, chain = _split_leaf((leaf, *chain), key, self.name)
        issuer, source = self._issuer(leaf, chain)
        files = live.files if live is not None else CertificateFiles(crt=Path(self.name))
        ocsp_path = files.ocsp or Path(self.name + ".ocsp")
        return assemble_certificate(
            name=self.name,
            files=files,
            leaf=leaf,
            private_key=key,
            chain=chain,
            issuer=issuer,
            issuer_source=source,
            issuer_path=files.issuer if source is IssuerSource.ISSUER_SIDECAR else None,
            ocsp=OcspFile(ocsp_path, self.ocsp_der) if self.ocsp_der is not None else None,
        )

    def _key(self, keys: tuple[PrivateKeyTypes, ...]) -> PrivateKeyTypes:
        if keys:
            return keys[0]
        if self.key_pem is not None:
            return parse_pem(self.key_pem).keys[0]
        if self.live is not None:
            return self.live.private_key
        raise TransactionError(
            f"No Private Key found in '{self.name}'. Send the key in the PEM payload or with "
            f"'set ssl cert {self.name}.key <<'."
        )

    def _issuer(
        self, leaf: x509.Certificate, chain: tuple[x509.Certificate, ...]
    ) -> tuple[x509.Certificate | None, IssuerSource]:
        for candidate in chain:
            if issued_by(leaf, candidate):
                return candidate, IssuerSource.CHAIN
        if self.issuer_pem is not None:
            candidate = parse_pem(self.issuer_pem).certificates[0]
            if not issued_by(leaf, candidate):
                raise TransactionError(
                    f"'{self.name}.issuer' is not the issuer of '{self.name}': send the "
                    "certificate that signed it."
                )
            return candidate, IssuerSource.ISSUER_SIDECAR
        live = self.live
        if live is not None and live.issuer is not None and issued_by(leaf, live.issuer):
            return live.issuer, live.issuer_source
        return None, IssuerSource.NONE


def begin(name: str, live: LoadedCertificate | None) -> Transaction:
    """A transaction on `name` starting from its live certificate (None: an empty store)."""
    return Transaction(name, live)


def _split_leaf(
    certificates: tuple[x509.Certificate, ...], key: PrivateKeyTypes, name: str
) -> tuple[x509.Certificate, tuple[x509.Certificate, ...]]:
    found = split_leaf(certificates, key)
    if found is not None:
        return found
    raise TransactionError(f"inconsistencies between private key and certificate loaded '{name}'.")
