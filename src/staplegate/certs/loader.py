"""Load one certificate from disk the way HAProxy 3.2 does: PEM bundle, sidecars, issuer.

Theory of operation (HAProxy's sidecar discovery, docs/reference/certificates.md). For a
certificate path `P` in discovery mode:

1. read `P`: certificates, private keys and DH parameters in any order. The leaf is the first
   certificate matching the key (the first certificate when the key is elsewhere); the other
   certificates are the chain, in file order;
2. base name `B` = `P`, minus a trailing `.crt` with `ssl-load-extra-del-ext`;
3. `B.key` when `P` holds no key (and `key` is in `ssl-load-extra-files`);
4. `B.sctl` is noted (staplegate sends no SCTs, and says so);
5. `B.ocsp`: raw bytes, kept unparsed (`check_ocsp_sidecar` verifies them later);
6. `B.issuer` (see the divergence below);
7. issuer for the CertId: the first chain certificate that directly issued the leaf, else
   `B.issuer`, else the `issuer` keyword file.

Without discovery (crt-store `load` lines, crt-list lines with `key`/`ocsp`/`issuer`/`sctl`)
only the named files are read, and the `issuer` file is not required to be the issuer
(HAProxy doesn't check it; we warn when it isn't).

Divergences from HAProxy, on purpose (docs/reference/certificates.md):

- `B.issuer` is read whenever it exists. HAProxy reads it only when a `.ocsp` file was loaded,
  so with `ocsp-update on` and no `.ocsp` it cannot find an issuer that is not in the PEM (so
  in every version from 2.8 to 3.2). When HAProxy would read it too, a wrong or unreadable
  `.issuer` is fatal as in HAProxy; when HAProxy would have ignored it, it is a warning and the
  file is not used, so every configuration HAProxy starts with also starts here.
- An expired or not-yet-valid certificate loads (as in HAProxy, which says nothing) with a
  warning naming its validity dates: serving it fails every handshake, which an operator
  wants to hear about at `-c` time.
- A private key readable by every user, unused extra keys or unknown PEM blocks, a `.sctl`
  file, and an `issuer` keyword file that did not issue the leaf give warnings.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import exceptions, x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from staplegate.certs.errors import CertificateError, CertificateErrorReason
from staplegate.certs.model import (
    CertificateFiles,
    IssuerSource,
    KeyType,
    LoadedCertificate,
    OcspFile,
)
from staplegate.certs.names import certificate_names
from staplegate.certs.pem import PemContents, PemError, PemErrorKind, parse_pem
from staplegate.certs.source import (
    BUNDLE_SUFFIXES,
    CertificateSource,
    ExtraFiles,
    Sidecar,
    sidecar_path,
)
from staplegate.ocsp.certid import CertId

_UNENCRYPTED_HINT = (
    "staplegate needs an unencrypted private key, like HAProxy without a passphrase: "
    "decrypt it with `openssl pkey -in KEY -out KEY.new` and keep it mode 0600"
)


def expand_bundle(source: CertificateSource, extra: ExtraFiles) -> tuple[CertificateSource, ...]:
    """The certificates a path names: itself, or `P.rsa`/`P.ecdsa`/`P.dsa` when `P` is absent.

    HAProxy's multi-certificate bundles need discovery mode and `bundle` in
    `ssl-load-extra-files`; each member is an independent store with its own sidecars. When
    nothing matches, the source comes back alone so loading reports the missing file.
    """
    if not (source.discover_sidecars and extra.bundle) or _exists(source.crt_path):
        return (source,)
    members = tuple(
        replace(source, name=source.name + suffix, crt_path=Path(str(source.crt_path) + suffix))
        for suffix in BUNDLE_SUFFIXES
        if _exists(Path(str(source.crt_path) + suffix))
    )
    return members or (source,)


def load_certificate(
    source: CertificateSource, *, extra: ExtraFiles, now: dt.datetime
) -> LoadedCertificate:
    """Read `source`'s files and return the certificate, or raise CertificateError."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return _Loading(source, extra).run(now)


def issued_by(certificate: x509.Certificate, candidate: x509.Certificate) -> bool:
    """True when `candidate` directly issued `certificate` (names chain, signature verifies)."""
    try:
        certificate.verify_directly_issued_by(candidate)
    except (ValueError, TypeError, exceptions.InvalidSignature, exceptions.UnsupportedAlgorithm):
        return False
    return True


def assemble_certificate(
    *,
    name: str,
    files: CertificateFiles,
    leaf: x509.Certificate,
    private_key: PrivateKeyTypes,
    chain: tuple[x509.Certificate, ...],
    issuer: x509.Certificate | None,
    issuer_source: IssuerSource,
    issuer_path: Path | None,
    ocsp: OcspFile | None,
    read_paths: tuple[Path, ...] = (),
    sctl_path: Path | None = None,
    has_dh_params: bool = False,
    warnings: tuple[str, ...] = (),
) -> LoadedCertificate:
    """A store entry from its parts; everything the leaf and issuer determine is derived here.

    The one place a `LoadedCertificate` is put together, for files (`load_certificate`) and
    runtime transactions (`runtime.transaction`) alike, so both derive names, key type,
    validity, OCSP URI, must-staple and the CertId the same way.
    """
    return LoadedCertificate(
        name=name,
        files=files,
        read_paths=read_paths,
        leaf=leaf,
        private_key=private_key,
        chain=chain,
        names=certificate_names(leaf),
        key_type=KeyType.of(leaf.public_key()),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        ocsp_uri=ocsp_uri(leaf),
        ocsp_uris=ocsp_uris(leaf),
        must_staple=must_staple(leaf),
        issuer=issuer,
        issuer_source=issuer_source,
        issuer_path=issuer_path,
        cert_id=CertId.for_certificate(leaf, issuer) if issuer is not None else None,
        ocsp=ocsp,
        sctl_path=sctl_path,
        has_dh_params=has_dh_params,
        warnings=warnings,
    )


@dataclass
class _KeyFound:
    key: PrivateKeyTypes
    path: Path


class _Loading:
    """One load: accumulates the files read and the warnings while walking the steps above."""

    def __init__(self, source: CertificateSource, extra: ExtraFiles) -> None:
        self.source = source
        self.extra = extra
        self.discovery = source.discover_sidecars
        self.read_paths: list[Path] = []
        self.warnings: list[str] = []

    def run(self, now: dt.datetime) -> LoadedCertificate:
        crt = self.source.crt_path
        pem = self._read_certificate_pem(crt)
        found = self._find_key(pem)
        leaf, chain = self._split_leaf(pem, found.key)
        self._check_validity(leaf, now)
        self._check_key_file_mode(found.path)

        files = self._candidate_files(found.path)
        sctl = self._read_sctl()
        ocsp_file = self._read_ocsp()
        sidecar_issuer = self._read_issuer_sidecar(leaf, haproxy_reads=ocsp_file is not None)
        keyword_issuer = self._read_issuer_keyword(leaf)

        issuer, issuer_source, issuer_path = self._choose_issuer(
            leaf, chain, sidecar_issuer, keyword_issuer
        )
        return assemble_certificate(
            name=self.source.name,
            files=files,
            read_paths=tuple(self.read_paths),
            leaf=leaf,
            private_key=found.key,
            chain=chain,
            issuer=issuer,
            issuer_source=issuer_source,
            issuer_path=issuer_path,
            ocsp=ocsp_file,
            sctl_path=sctl,
            has_dh_params=pem.has_dh_params,
            warnings=tuple(self.warnings),
        )

    # -- the certificate file ---------------------------------------------------------------

    def _read_certificate_pem(self, crt: Path) -> PemContents:
        data = self._read(crt, _certificate_read_error)
        try:
            pem = parse_pem(data)
        except PemError as exc:
            raise _pem_error(crt, exc, data) from exc
        if not pem.certificates:
            raise CertificateError(
                CertificateErrorReason.NO_CERTIFICATE,
                crt,
                f"unable to load certificate from file '{crt}': no certificate found.",
                hint="the file must hold a PEM certificate (BEGIN CERTIFICATE)",
            )
        if pem.ignored:
            self.warnings.append(
                f"'{crt}': ignored PEM block(s) {', '.join(repr(n) for n in pem.ignored)}."
            )
        return pem

    def _find_key(self, pem: PemContents) -> _KeyFound:
        crt = self.source.crt_path
        if self.source.key_path is not None:
            return _KeyFound(
                self._read_key_file(self.source.key_path, explicit=True), self.source.key_path
            )
        if pem.keys:
            if len(pem.keys) > 1:
                self.warnings.append(
                    f"'{crt}' holds {len(pem.keys)} private keys; only the first is used."
                )
            return _KeyFound(pem.keys[0], crt)
        if self.discovery and self.extra.key:
            key_path = sidecar_path(crt, Sidecar.KEY, self.extra)
            return _KeyFound(self._read_key_file(key_path, explicit=False), key_path)
        raise CertificateError(
            CertificateErrorReason.NO_PRIVATE_KEY,
            crt,
            f"No Private Key found in '{crt}'.",
            hint="put the private key in the PEM file or name it with the 'key' keyword",
        )

    def _read_key_file(self, path: Path, *, explicit: bool) -> PrivateKeyTypes:
        missing_hint = (
            "check the 'key' keyword's path"
            if explicit
            else f"put the key in '{self.source.crt_path}' or in '{path}'"
        )
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            if explicit:
                raise _os_error(
                    CertificateErrorReason.MISSING_FILE,
                    path,
                    exc,
                    f"unable to load private key from file '{path}'",
                ) from exc
            raise CertificateError(
                CertificateErrorReason.NO_PRIVATE_KEY,
                path,
                f"No Private Key found in '{path}'.",
                hint=missing_hint,
            ) from exc
        except OSError as exc:
            raise _os_error(
                CertificateErrorReason.UNREADABLE_FILE,
                path,
                exc,
                f"unable to load private key from file '{path}'",
            ) from exc
        self.read_paths.append(path)
        try:
            pem = parse_pem(data)
        except PemError as exc:
            if exc.kind is PemErrorKind.NO_PEM:
                raise CertificateError(
                    CertificateErrorReason.NO_PRIVATE_KEY,
                    path,
                    f"No Private Key found in '{path}'.",
                    hint="the file holds no PEM data",
                ) from exc
            raise _pem_error(path, exc, data) from exc
        if not pem.keys:
            raise CertificateError(
                CertificateErrorReason.NO_PRIVATE_KEY,
                path,
                f"No Private Key found in '{path}'.",
                hint=missing_hint,
            )
        return pem.keys[0]

    def _split_leaf(
        self, pem: PemContents, key: PrivateKeyTypes
    ) -> tuple[x509.Certificate, tuple[x509.Certificate, ...]]:
        found = split_leaf(pem.certificates, key)
        if found is not None:
            return found
        crt = self.source.crt_path
        raise CertificateError(
            CertificateErrorReason.KEY_MISMATCH,
            crt,
            f"inconsistencies between private key and certificate loaded '{crt}'.",
            hint="no certificate in the file matches the private key; pair the key with the "
            "certificate it was issued for",
        )

    def _check_validity(self, leaf: x509.Certificate, now: dt.datetime) -> None:
        crt = self.source.crt_path
        if now > leaf.not_valid_after_utc:
            self.warnings.append(
                f"'{crt}': certificate expired on {_iso(leaf.not_valid_after_utc)} (notAfter); "
                "clients will reject it: renew it."
            )
        if now < leaf.not_valid_before_utc:
            self.warnings.append(
                f"'{crt}': certificate is not valid before {_iso(leaf.not_valid_before_utc)} "
                "(notBefore); clients will reject it until then: check this machine's clock."
            )

    def _check_key_file_mode(self, path: Path) -> None:
        try:
            mode = path.stat().st_mode
        except OSError:
            return
        # Group access is a legitimate setup (Debian's ssl-cert group: 0640); world is not.
        if mode & stat.S_IRWXO:
            self.warnings.append(
                f"'{path}' holds a private key and is accessible to every user "
                f"(mode {stat.S_IMODE(mode):04o}): chmod 600 (or 640 for a trusted group) it."
            )

    # -- sidecars and keyword files --------------------------------------------------------

    def _candidate_files(self, key_path: Path) -> CertificateFiles:
        crt = self.source.crt_path

        def pick(explicit: Path | None, sidecar: Sidecar) -> Path | None:
            if explicit is not None:
                return explicit
            if self.discovery and self.extra.reads(sidecar):
                return sidecar_path(crt, sidecar, self.extra)
            return None

        return CertificateFiles(
            crt=crt,
            key=key_path,
            ocsp=pick(self.source.ocsp_path, Sidecar.OCSP),
            issuer=pick(self.source.issuer_path, Sidecar.ISSUER),
            sctl=pick(self.source.sctl_path, Sidecar.SCTL),
        )

    def _discovered(self, sidecar: Sidecar, explicit: Path | None) -> Path | None:
        """The sidecar path to try in discovery mode, or None when it is not looked for."""
        if explicit is not None or not self.discovery or not self.extra.reads(sidecar):
            return None
        return sidecar_path(self.source.crt_path, sidecar, self.extra)

    def _read_sctl(self) -> Path | None:
        explicit = self.source.sctl_path
        if explicit is not None:
            self._read(explicit, _keyword_read_error)
            path = explicit
        else:
            candidate = self._discovered(Sidecar.SCTL, None)
            if candidate is None or not _exists(candidate):
                return None
            path = candidate
        self.warnings.append(
            f"'{path}': staplegate does not send signed certificate timestamps; file ignored."
        )
        return path

    def _read_ocsp(self) -> OcspFile | None:
        explicit = self.source.ocsp_path
        if explicit is not None:
            return OcspFile(explicit, self._read(explicit, _ocsp_keyword_read_error))
        candidate = self._discovered(Sidecar.OCSP, None)
        if candidate is None:
            return None
        try:
            der = candidate.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _os_error(
                CertificateErrorReason.OCSP_UNREADABLE,
                candidate,
                exc,
                f"Error opening OCSP response file '{candidate}'",
            ) from exc
        self.read_paths.append(candidate)
        return OcspFile(candidate, der)

    def _read_issuer_sidecar(
        self, leaf: x509.Certificate, *, haproxy_reads: bool
    ) -> x509.Certificate | None:
        candidate = self._discovered(Sidecar.ISSUER, self.source.issuer_path)
        if candidate is None:
            return None

        def refuse(reason: CertificateErrorReason, message: str, hint: str) -> None:
            if haproxy_reads:
                raise CertificateError(reason, candidate, message, hint=hint)
            self.warnings.append(
                f"{message} The file is ignored ({hint}); HAProxy ignores it too, as no "
                ".ocsp file was loaded."
            )

        try:
            data = candidate.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            refuse(
                CertificateErrorReason.ISSUER_UNREADABLE,
                f"'{candidate}' cannot be read or parsed: {_strerror(exc)}.",
                "make it readable by staplegate's user",
            )
            return None
        self.read_paths.append(candidate)
        issuer = _first_certificate(data)
        if issuer is None:
            refuse(
                CertificateErrorReason.ISSUER_UNREADABLE,
                f"'{candidate}' cannot be read or parsed.",
                "it must hold the issuer's certificate in PEM",
            )
            return None
        if not issued_by(leaf, issuer):
            refuse(
                CertificateErrorReason.ISSUER_NOT_ISSUER,
                f"'{candidate}' is not an issuer.",
                f"it holds {issuer.subject.rfc4514_string()!r}, which did not issue "
                f"{leaf.subject.rfc4514_string()!r}; put the issuing CA's certificate in it",
            )
            return None
        return issuer

    def _read_issuer_keyword(self, leaf: x509.Certificate) -> x509.Certificate | None:
        path = self.source.issuer_path
        if path is None:
            return None
        data = self._read(path, _issuer_keyword_read_error)
        issuer = _first_certificate(data)
        if issuer is None:
            raise CertificateError(
                CertificateErrorReason.ISSUER_UNREADABLE,
                path,
                f"'{path}' cannot be read or parsed.",
                hint="the 'issuer' file must hold the issuer's certificate in PEM",
            )
        if not issued_by(leaf, issuer):
            self.warnings.append(
                f"'{path}' (issuer keyword) holds {issuer.subject.rfc4514_string()!r}, which "
                f"did not issue {leaf.subject.rfc4514_string()!r}: OCSP requests and staples "
                "will name the wrong certificate."
            )
        return issuer

    def _choose_issuer(
        self,
        leaf: x509.Certificate,
        chain: tuple[x509.Certificate, ...],
        sidecar_issuer: x509.Certificate | None,
        keyword_issuer: x509.Certificate | None,
    ) -> tuple[x509.Certificate | None, IssuerSource, Path | None]:
        for candidate in chain:
            if issued_by(leaf, candidate):
                return candidate, IssuerSource.CHAIN, self.source.crt_path
        if sidecar_issuer is not None:
            path = sidecar_path(self.source.crt_path, Sidecar.ISSUER, self.extra)
            return sidecar_issuer, IssuerSource.ISSUER_SIDECAR, path
        if keyword_issuer is not None:
            return keyword_issuer, IssuerSource.ISSUER_KEYWORD, self.source.issuer_path
        return None, IssuerSource.NONE, None

    # -- file access ------------------------------------------------------------------------

    def _read(self, path: Path, on_error: Callable[[Path, OSError], CertificateError]) -> bytes:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise on_error(path, exc) from exc
        self.read_paths.append(path)
        return data


# -- helpers --------------------------------------------------------------------------------


def _exists(path: Path) -> bool:
    """True unless the path is certainly absent (a permission error counts as present)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True
    return True


def _strerror(exc: OSError) -> str:
    return exc.strerror or os.strerror(exc.errno or errno.EIO)


def _os_error(
    reason: CertificateErrorReason, path: Path, exc: OSError, prefix: str
) -> CertificateError:
    if isinstance(exc, FileNotFoundError):
        hint = "check the path"
    elif isinstance(exc, PermissionError):
        hint = "make the file readable by the user staplegate runs as"
    elif isinstance(exc, IsADirectoryError):
        hint = "this path is a directory, not a file"
    else:
        hint = "check the file"
    return CertificateError(reason, path, f"{prefix}: {_strerror(exc)}.", hint=hint)


def _certificate_read_error(path: Path, exc: OSError) -> CertificateError:
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return CertificateError(
            CertificateErrorReason.MISSING_FILE,
            path,
            f"unable to stat SSL certificate from file '{path}' : {_strerror(exc)}.",
            hint="check the path (relative paths are resolved against crt-base)",
        )
    return _os_error(
        CertificateErrorReason.UNREADABLE_FILE,
        path,
        exc,
        f"unable to load certificate from file '{path}'",
    )


def _keyword_read_error(path: Path, exc: OSError) -> CertificateError:
    reason = (
        CertificateErrorReason.MISSING_FILE
        if isinstance(exc, FileNotFoundError | NotADirectoryError)
        else CertificateErrorReason.UNREADABLE_FILE
    )
    return _os_error(reason, path, exc, f"'{path}' cannot be read or parsed")


def _ocsp_keyword_read_error(path: Path, exc: OSError) -> CertificateError:
    return _os_error(
        CertificateErrorReason.OCSP_UNREADABLE, path, exc, f"'{path}' cannot be read or parsed"
    )


def _issuer_keyword_read_error(path: Path, exc: OSError) -> CertificateError:
    return _os_error(
        CertificateErrorReason.ISSUER_UNREADABLE, path, exc, f"'{path}' cannot be read or parsed"
    )


def _pem_error(path: Path, exc: PemError, data: bytes) -> CertificateError:
    if exc.kind is PemErrorKind.ENCRYPTED_KEY:
        return CertificateError(
            CertificateErrorReason.ENCRYPTED_KEY,
            path,
            f"unable to load private key from file '{path}': the private key is encrypted "
            f"({exc.detail}).",
            hint=_UNENCRYPTED_HINT,
        )
    if exc.kind is PemErrorKind.NO_PEM:
        hint = "the file must be PEM (-----BEGIN CERTIFICATE-----)"
        if _is_der_certificate(data):
            hint = (
                "it is a DER certificate; convert it with "
                f"`openssl x509 -inform DER -in {path} -out {path}.pem`"
            )
        return CertificateError(
            CertificateErrorReason.NOT_PEM,
            path,
            f"unable to load certificate from file '{path}': no PEM data found.",
            hint=hint,
        )
    return CertificateError(
        CertificateErrorReason.MALFORMED_PEM,
        path,
        f"unable to load certificate from file '{path}': {exc.detail}.",
        hint="the PEM block is damaged; copy the file again from its source",
    )


def _is_der_certificate(data: bytes) -> bool:
    try:
        x509.load_der_x509_certificate(data)
    except ValueError:
        return False
    return True


def _first_certificate(data: bytes) -> x509.Certificate | None:
    try:
        pem = parse_pem(data)
    except PemError:
        return None
    return pem.certificates[0] if pem.certificates else None


def spki(key: PublicKeyTypes) -> bytes:
    """SubjectPublicKeyInfo DER, to compare a certificate's key with a private key's."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def split_leaf(
    certificates: tuple[x509.Certificate, ...], key: PrivateKeyTypes
) -> tuple[x509.Certificate, tuple[x509.Certificate, ...]] | None:
    """(leaf, chain): the first certificate matching `key`, the others in order; None if none."""
    wanted = spki(key.public_key())
    for index, certificate in enumerate(certificates):
        if spki(certificate.public_key()) == wanted:
            return certificate, certificates[:index] + certificates[index + 1 :]
    return None


def ocsp_uri(certificate: x509.Certificate) -> str | None:
    """The first id-ad-ocsp accessLocation, verbatim, as HAProxy takes it."""
    uris = ocsp_uris(certificate)
    return uris[0] if uris else None


def ocsp_uris(certificate: x509.Certificate) -> tuple[str, ...]:
    """Every id-ad-ocsp URI accessLocation, verbatim, in certificate order (HAProxy uses
    the first only; staplegate tries the others when it fails)."""
    try:
        aia = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    except (x509.ExtensionNotFound, ValueError):
        return ()
    return tuple(
        description.access_location.value
        for description in aia.value
        if description.access_method == x509.oid.AuthorityInformationAccessOID.OCSP
        and isinstance(description.access_location, x509.UniformResourceIdentifier)
    )


def must_staple(certificate: x509.Certificate) -> bool:
    """True when the TLS feature extension asks for status_request (RFC 7633)."""
    try:
        feature = certificate.extensions.get_extension_for_class(x509.TLSFeature)
    except x509.ExtensionNotFound:
        return False
    return x509.TLSFeatureType.status_request in feature.value


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
