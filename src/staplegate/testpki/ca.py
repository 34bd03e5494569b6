"""A test certificate authority that lives in openssl `ca`'s directory layout.

Theory of operation: everything a CA knows is on disk, in the files `openssl ca` and
`openssl ocsp -index` read, so our Python API, the `staplegate ca` command and the openssl
tools can take turns on the same directory:

    DIR/openssl.cnf            written by us; `openssl ca -config DIR/openssl.cnf` works
    DIR/index.txt(.attr)       the database (see index.py), `unique_subject = yes`
    DIR/serial, DIR/crlnumber  next serial / CRL number, uppercase hex, `.old` kept on update
    DIR/certs/ca.pem           the issuing CA (the intermediate when there is one)
    DIR/certs/root.pem         the self-signed root (same as ca.pem without an intermediate)
    DIR/certs/ca-chain.pem     issuing CA up to and including the root
    DIR/private/*.key          PKCS#8 PEM keys, mode 0600, directory 0700
    DIR/newcerts/SERIAL.pem    a copy of every certificate issued, as openssl ca keeps them
    DIR/crl/crl.pem            the latest CRL
    DIR/issued/NAME.pem        HAProxy bundles (certificate + key + chain) and NAME.pem.issuer
    DIR/staplegate-ca.json     our own settings (default OCSP URL), which openssl ignores

Every read-modify-write of the database holds an flock on DIR/.staplegate.lock, so parallel
test workers sharing a CA do not lose entries. Time comes from a `Clock` (or explicit
datetimes), never from the wall clock directly.
"""

from __future__ import annotations

import datetime as dt
import enum
import fcntl
import ipaddress
import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from staplegate.clock import Clock, SystemClock
from staplegate.testpki import openssl_cnf
from staplegate.testpki.index import (
    REVOCATION_REASONS,
    EntryStatus,
    IndexEntry,
    crl_reason,
    format_serial,
    read_index,
    write_index,
)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

SETTINGS_FILE: Final = "staplegate-ca.json"
LOCK_FILE: Final = ".staplegate.lock"
DEFAULT_OCSP_URL: Final = "http://127.0.0.1:8080"
DEFAULT_CA_NAME: Final = "staplegate Test CA"
DEFAULT_SIGNER_CN: Final = "staplegate OCSP Responder"
CA_DAYS: Final = 3650
# Leaves start slightly in the past so a peer whose clock lags a little accepts them; CAs start
# well in the past so tests may issue leaves valid at earlier times (expired-certificate cases).
BACKDATE: Final = dt.timedelta(minutes=5)
CA_BACKDATE: Final = dt.timedelta(days=30)

_NAME_RE: Final = re.compile(r"^[A-Za-z0-9*_][A-Za-z0-9._*@+-]{0,63}$")
_LABEL: Final = r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9])?"
_HOSTNAME_RE: Final = re.compile(rf"^(\*\.)?{_LABEL}(\.{_LABEL})*\.?$")

# Short names X509_NAME_oneline prints, for the subject column of index.txt.
_ONELINE_NAMES: Final = {
    NameOID.COMMON_NAME: "CN",
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.EMAIL_ADDRESS: "emailAddress",
}


class CAErrorReason(enum.Enum):
    NOT_A_CA = "not a CA directory"
    ALREADY_A_CA = "already a CA directory"
    ALREADY_ISSUED = "already issued"
    UNKNOWN_NAME = "unknown name"
    UNKNOWN_SERIAL = "unknown serial"
    UNKNOWN_REASON = "unknown revocation reason"
    ALREADY_REVOKED = "already revoked"
    BAD_NAME = "bad certificate name"
    BAD_ARGUMENT = "bad argument"


class CAError(Exception):
    """A CA operation refused; `reason` says which rule, `path` which file or directory."""

    def __init__(self, reason: CAErrorReason, path: Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.reason = reason
        self.path = path


class KeyKind(enum.Enum):
    """Key types a test certificate can have; EC is the default because RSA is slow to make."""

    RSA2048 = "rsa2048"
    RSA4096 = "rsa4096"
    EC256 = "ec256"
    EC384 = "ec384"

    def generate(self) -> PrivateKey:
        if self is KeyKind.RSA2048:
            return rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if self is KeyKind.RSA4096:
            return rsa.generate_private_key(public_exponent=65537, key_size=4096)
        if self is KeyKind.EC384:
            return ec.generate_private_key(ec.SECP384R1())
        return ec.generate_private_key(ec.SECP256R1())

    @property
    def is_rsa(self) -> bool:
        return self in (KeyKind.RSA2048, KeyKind.RSA4096)


class _Default(enum.Enum):
    """Sentinel type: "use the CA's configured value" (distinct from None = "none at all")."""

    DEFAULT = "default"


DEFAULT: Final = _Default.DEFAULT
Default = Literal[_Default.DEFAULT]  # the type of DEFAULT, for signatures that pass it on


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A leaf certificate written as a HAProxy bundle plus its `.issuer` sidecar."""

    name: str
    serial: int
    certificate: x509.Certificate
    private_key: PrivateKey
    chain: tuple[x509.Certificate, ...]
    issuer: x509.Certificate
    bundle_path: Path
    issuer_path: Path


@dataclass(frozen=True, slots=True)
class SignerFiles:
    """A delegated OCSP responder certificate and its key (for `openssl ocsp -rsigner/-rkey`)."""

    serial: int
    certificate: x509.Certificate
    private_key: PrivateKey
    cert_path: Path
    key_path: Path


@dataclass(frozen=True, slots=True)
class CASettings:
    """What openssl.cnf cannot tell us back easily: kept in DIR/staplegate-ca.json."""

    name: str
    ocsp_url: str | None
    intermediate: bool

    def to_json(self) -> str:
        data = {
            "format": 1,
            "name": self.name,
            "ocsp_url": self.ocsp_url,
            "intermediate": self.intermediate,
        }
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> CASettings:
        data = json.loads(text)
        url = data.get("ocsp_url")
        return cls(
            name=str(data["name"]),
            ocsp_url=None if url is None else str(url),
            intermediate=bool(data.get("intermediate", False)),
        )


# ---------------------------------------------------------------------------------------------
# small file helpers


def _write_private(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 from the start (never world-readable, not even briefly)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o600)


def _replace_text(path: Path, text: str) -> None:
    """Write `path` the way openssl updates serial/crlnumber: keep the previous one as `.old`."""
    new = path.with_name(path.name + ".new")
    new.write_text(text, encoding="ascii")
    if path.exists():
        os.replace(path, path.with_name(path.name + ".old"))
    os.replace(new, path)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def _load_key(path: Path) -> PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CAError(CAErrorReason.NOT_A_CA, path, "unsupported key type (need RSA or EC)")
    return key


def _digest_for(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def subject_oneline(name: x509.Name) -> str:
    """`name` as X509_NAME_oneline prints it (`/CN=www.test`), as index.txt stores subjects."""
    parts = []
    for attribute in name:
        short = _ONELINE_NAMES.get(attribute.oid, attribute.oid.dotted_string)
        value = attribute.value if isinstance(attribute.value, str) else attribute.value.hex()
        parts.append(f"/{short}={value}")
    return "".join(parts)


def looks_like_hostname(name: str) -> bool:
    """True when `name` can be a DNS SAN (or is an IP address)."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return bool(_HOSTNAME_RE.match(name)) and len(name) <= 253
    return True


def _general_name(san: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(san))
    except ValueError:
        return x509.DNSName(san)


def _cn(value: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, value)])


def _ca_certificate(
    *,
    subject: str,
    key: PrivateKey,
    issuer_cert: x509.Certificate | None,
    issuer_key: PrivateKey,
    serial: int,
    not_before: dt.datetime,
    path_length: int | None,
) -> x509.Certificate:
    """A CA certificate: self-signed when `issuer_cert` is None."""
    issuer_name = issuer_cert.subject if issuer_cert is not None else _cn(subject)
    issuer_public = issuer_key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_cn(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public), critical=False
        )
    )
    return builder.sign(issuer_key, _digest_for(issuer_key))


def _random_serial() -> int:
    """A positive 64-bit first serial whose hex form has 16 digits, like openssl's random ones."""
    return int.from_bytes(os.urandom(8), "big") & 0x3FFF_FFFF_FFFF_FFFF | 0x1000_0000_0000_0000


# ---------------------------------------------------------------------------------------------


class CertificateAuthority:
    """A CA directory opened for use; create one with `init`, reopen it with `open`."""

    def __init__(
        self,
        directory: Path,
        *,
        settings: CASettings,
        certificate: x509.Certificate,
        private_key: PrivateKey,
        root: x509.Certificate,
        clock: Clock,
    ) -> None:
        self.directory = directory
        self.settings = settings
        self.certificate = certificate
        self.private_key = private_key
        self.root = root
        self.clock = clock

    # -- paths -----------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.directory / "openssl.cnf"

    @property
    def index_path(self) -> Path:
        return self.directory / openssl_cnf.INDEX

    @property
    def serial_path(self) -> Path:
        return self.directory / openssl_cnf.SERIAL

    @property
    def crlnumber_path(self) -> Path:
        return self.directory / openssl_cnf.CRLNUMBER

    @property
    def ca_cert_path(self) -> Path:
        """The issuing CA certificate (`openssl ocsp -CA`, `-issuer`)."""
        return self.directory / openssl_cnf.CA_CERT

    @property
    def ca_key_path(self) -> Path:
        return self.directory / openssl_cnf.CA_KEY

    @property
    def root_cert_path(self) -> Path:
        """The self-signed root (`-CAfile` for `openssl verify` and `openssl ocsp`)."""
        return self.directory / "certs" / "root.pem"

    @property
    def root_key_path(self) -> Path:
        if self.settings.intermediate:
            return self.directory / "private" / "root.key"
        return self.ca_key_path

    @property
    def chain_path(self) -> Path:
        """Issuing CA up to and including the root."""
        return self.directory / "certs" / "ca-chain.pem"

    @property
    def crl_path(self) -> Path:
        return self.directory / openssl_cnf.CRL

    @property
    def issued_dir(self) -> Path:
        return self.directory / "issued"

    @property
    def default_ocsp_url(self) -> str | None:
        return self.settings.ocsp_url

    @property
    def intermediates(self) -> tuple[x509.Certificate, ...]:
        """The certificates between a leaf and the root (what a bundle's chain carries)."""
        return (self.certificate,) if self.settings.intermediate else ()

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        directory: Path,
        *,
        name: str = DEFAULT_CA_NAME,
        key: KeyKind = KeyKind.EC256,
        intermediate: bool = False,
        ocsp_url: str | None = DEFAULT_OCSP_URL,
        now: dt.datetime | None = None,
        clock: Clock | None = None,
    ) -> CertificateAuthority:
        """Create a CA in `directory` (created if missing; must not already hold a CA)."""
        clock = clock or SystemClock()
        created = (now or clock.now()) - CA_BACKDATE
        if created.tzinfo is None:
            raise ValueError("`now` must be timezone-aware")
        directory = directory.absolute()
        if (directory / openssl_cnf.INDEX).exists() or (directory / SETTINGS_FILE).exists():
            raise CAError(
                CAErrorReason.ALREADY_A_CA,
                directory,
                "already holds a CA (index.txt exists); choose an empty directory",
            )
        if not name.strip():
            raise CAError(CAErrorReason.BAD_NAME, directory, "the CA name must not be empty")
        directory.mkdir(parents=True, exist_ok=True)
        for sub in ("certs", "newcerts", "crl", "issued"):
            (directory / sub).mkdir(exist_ok=True)
        (directory / "private").mkdir(mode=0o700, exist_ok=True)
        os.chmod(directory / "private", 0o700)

        root_key = key.generate()
        root_name = f"{name} Root" if intermediate else name
        root = _ca_certificate(
            subject=root_name,
            key=root_key,
            issuer_cert=None,
            issuer_key=root_key,
            serial=_random_serial(),
            not_before=created,
            path_length=None,
        )
        if intermediate:
            ca_key = key.generate()
            ca_cert = _ca_certificate(
                subject=name,
                key=ca_key,
                issuer_cert=root,
                issuer_key=root_key,
                serial=_random_serial(),
                not_before=created,
                path_length=0,
            )
            _write_private(directory / "private" / "root.key", _key_pem(root_key))
        else:
            ca_key, ca_cert = root_key, root

        _write_private(directory / openssl_cnf.CA_KEY, _key_pem(ca_key))
        (directory / openssl_cnf.CA_CERT).write_bytes(_cert_pem(ca_cert))
        (directory / "certs" / "root.pem").write_bytes(_cert_pem(root))
        chain = (ca_cert, root) if intermediate else (root,)
        (directory / "certs" / "ca-chain.pem").write_bytes(_cert_pem(*chain))

        (directory / openssl_cnf.INDEX).write_text("", encoding="ascii")
        (directory / (openssl_cnf.INDEX + ".attr")).write_text(
            "unique_subject = yes\n", encoding="ascii"
        )
        (directory / openssl_cnf.SERIAL).write_text(
            format_serial(_random_serial()) + "\n", encoding="ascii"
        )
        (directory / openssl_cnf.CRLNUMBER).write_text("01\n", encoding="ascii")
        settings = CASettings(name=name, ocsp_url=ocsp_url, intermediate=intermediate)
        (directory / "openssl.cnf").write_text(
            openssl_cnf.render_openssl_cnf(
                directory,
                ocsp_url=ocsp_url,
                digest="sha384" if key is KeyKind.EC384 else "sha256",
            ),
            encoding="utf-8",
        )
        (directory / SETTINGS_FILE).write_text(settings.to_json(), encoding="utf-8")
        return cls(
            directory,
            settings=settings,
            certificate=ca_cert,
            private_key=ca_key,
            root=root,
            clock=clock,
        )

    @classmethod
    def open(cls, directory: Path, *, clock: Clock | None = None) -> CertificateAuthority:
        """Open an existing CA directory (made by `init`)."""
        directory = directory.absolute()
        required = (
            SETTINGS_FILE,
            openssl_cnf.INDEX,
            openssl_cnf.SERIAL,
            openssl_cnf.CA_CERT,
            openssl_cnf.CA_KEY,
            "certs/root.pem",
        )
        missing = [name for name in required if not (directory / name).is_file()]
        if missing:
            raise CAError(
                CAErrorReason.NOT_A_CA,
                directory,
                f"not a staplegate CA directory (missing {', '.join(missing)}); "
                "create one with `staplegate ca init DIR`",
            )
        try:
            settings = CASettings.from_json((directory / SETTINGS_FILE).read_text("utf-8"))
        except (ValueError, KeyError) as error:
            raise CAError(
                CAErrorReason.NOT_A_CA, directory / SETTINGS_FILE, f"unreadable settings: {error}"
            ) from None
        certificate = x509.load_pem_x509_certificate((directory / openssl_cnf.CA_CERT).read_bytes())
        root = x509.load_pem_x509_certificate((directory / "certs" / "root.pem").read_bytes())
        return cls(
            directory,
            settings=settings,
            certificate=certificate,
            private_key=_load_key(directory / openssl_cnf.CA_KEY),
            root=root,
            clock=clock or SystemClock(),
        )

    # -- database ----------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialize database updates between processes sharing this directory."""
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def entries(self) -> list[IndexEntry]:
        """Every line of index.txt, in file order."""
        return read_index(self.index_path)

    def entry(self, serial: int) -> IndexEntry | None:
        """The index entry for `serial`, or None when this CA never issued it."""
        for candidate in self.entries():
            if candidate.serial == serial:
                return candidate
        return None

    def _next_serial(self) -> int:
        text = self.serial_path.read_text(encoding="ascii").strip()
        try:
            return int(text, 16)
        except ValueError:
            raise CAError(
                CAErrorReason.NOT_A_CA, self.serial_path, f"not a hex serial: {text!r}"
            ) from None

    def _record(self, certificate: x509.Certificate) -> None:
        """Append `certificate` to the database as `openssl ca` does (caller holds the lock)."""
        serial = certificate.serial_number
        entry = IndexEntry(
            status=EntryStatus.VALID,
            expires=certificate.not_valid_after_utc,
            serial=serial,
            subject=subject_oneline(certificate.subject),
        )
        entries = self.entries()
        write_index(self.index_path, [*entries, entry])
        _replace_text(self.serial_path, format_serial(serial + 1) + "\n")
        newcert = self.directory / "newcerts" / f"{format_serial(serial)}.pem"
        newcert.write_bytes(_cert_pem(certificate))

    def _check_unique(self, subject: str, entries: Sequence[IndexEntry]) -> None:
        """openssl's unique_subject rule: one *valid* certificate per subject."""
        for existing in entries:
            if existing.status is EntryStatus.VALID and existing.subject == subject:
                raise CAError(
                    CAErrorReason.ALREADY_ISSUED,
                    self.index_path,
                    f"a valid certificate for {subject} already exists "
                    f"(serial {format_serial(existing.serial)}); revoke it first",
                )

    def _sign_leaf(
        self,
        builder: x509.CertificateBuilder,
        public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    ) -> x509.CertificateBuilder:
        return (
            builder.issuer_name(self.certificate.subject)
            .public_key(public_key)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.private_key.public_key()),
                critical=False,
            )
        )

    def _validity(
        self, days: int, not_before: dt.datetime | None, not_after: dt.datetime | None
    ) -> tuple[dt.datetime, dt.datetime]:
        if not_before is None:
            start = self.clock.now() - BACKDATE
            end = start + BACKDATE + dt.timedelta(days=days)
        else:
            start = not_before
            end = start + dt.timedelta(days=days)
        if not_after is not None:
            end = not_after
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("validity datetimes must be timezone-aware")
        if end <= start:
            raise CAError(
                CAErrorReason.BAD_ARGUMENT,
                self.directory,
                f"notAfter {end.isoformat()} is not after notBefore {start.isoformat()}",
            )
        return start, end

    # -- issuing -----------------------------------------------------------------------------

    def issue(
        self,
        name: str,
        *,
        sans: Sequence[str] = (),
        key: KeyKind = KeyKind.EC256,
        ocsp_url: str | Sequence[str] | Default | None = DEFAULT,
        crl_url: str | None = None,
        must_staple: bool = False,
        days: int = 90,
        out_dir: Path | None = None,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        include_root: bool = False,
    ) -> IssuedCertificate:
        """Issue a server certificate for CN=`name` and write `NAME.pem` + `NAME.pem.issuer`.

        SANs default to `name` when it looks like a host name. `not_before` (with `days`) or
        `not_after` make expired or not-yet-valid certificates for tests. `ocsp_url` may be
        several URLs (AIA OCSP entries, in order) or None (no OCSP URL at all); `crl_url` adds
        a CRL Distribution Point.
        """
        if not _NAME_RE.match(name):
            raise CAError(
                CAErrorReason.BAD_NAME,
                self.directory,
                f"bad certificate name {name!r}: use letters, digits and . _ - * @ + "
                "(at most 64 characters, no /)",
            )
        url = self.settings.ocsp_url if ocsp_url is DEFAULT else ocsp_url
        ocsp_urls = [url] if isinstance(url, str) else list(url or ())
        san_list = list(sans) or ([name] if looks_like_hostname(name) else [])
        start, end = self._validity(days, not_before, not_after)
        out = (out_dir or self.issued_dir).absolute()
        leaf_key = key.generate()
        subject = _cn(name)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=key.is_rsa,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        builder = self._sign_leaf(builder, leaf_key.public_key())
        if san_list:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(s) for s in san_list]), critical=False
            )
        if ocsp_urls:
            builder = builder.add_extension(
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            x509.oid.AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier(each),
                        )
                        for each in ocsp_urls
                    ]
                ),
                critical=False,
            )
        if crl_url:
            point = x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(crl_url)],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
            builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
        if must_staple:
            builder = builder.add_extension(
                x509.TLSFeature([x509.TLSFeatureType.status_request]), critical=False
            )
        # before recording: an output directory that cannot be made must not leave an index
        # entry without its bundle (and block re-issuing the name)
        out.mkdir(parents=True, exist_ok=True)
        with self._locked():
            entries = self.entries()
            self._check_unique(subject_oneline(subject), entries)
            serial = self._next_serial()
            certificate = builder.serial_number(serial).sign(
                self.private_key, _digest_for(self.private_key)
            )
            self._record(certificate)
        chain = self.intermediates + ((self.root,) if include_root else ())
        bundle_path = out / f"{name}.pem"
        issuer_path = out / f"{name}.pem.issuer"
        _write_private(bundle_path, _cert_pem(certificate) + _key_pem(leaf_key) + _cert_pem(*chain))
        issuer_path.write_bytes(_cert_pem(self.certificate))
        return IssuedCertificate(
            name=name,
            serial=serial,
            certificate=certificate,
            private_key=leaf_key,
            chain=chain,
            issuer=self.certificate,
            bundle_path=bundle_path,
            issuer_path=issuer_path,
        )

    def good_response(
        self,
        issued: IssuedCertificate,
        *,
        now: dt.datetime | None = None,
        valid_for: dt.timedelta = dt.timedelta(days=1),
    ) -> bytes:
        """A GOOD OCSP response (DER) for a leaf this CA issued, signed by the CA itself.

        For a static `.ocsp` sidecar (benchmarks, `staplegate check`) where no responder runs;
        thisUpdate is a minute back, so a clock slightly behind still accepts it.
        """
        when = now or self.clock.now()
        response = (
            ocsp.OCSPResponseBuilder()
            .add_response(
                cert=issued.certificate,
                issuer=self.certificate,
                algorithm=hashes.SHA1(),
                cert_status=ocsp.OCSPCertStatus.GOOD,
                this_update=when - dt.timedelta(minutes=1),
                next_update=when + valid_for,
                revocation_time=None,
                revocation_reason=None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, self.certificate)
            .sign(self.private_key, hashes.SHA256())
        )
        return response.public_bytes(serialization.Encoding.DER)

    def ocsp_signer(
        self,
        *,
        cn: str = DEFAULT_SIGNER_CN,
        nocheck: bool = False,
        key: KeyKind = KeyKind.EC256,
        days: int = 365,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        ocsp_signing_eku: bool = True,
        file_stem: str | None = None,
    ) -> SignerFiles:
        """Issue a delegated OCSP responder certificate (EKU OCSPSigning) and record it.

        Files go to certs/STEM.pem and private/STEM.key; STEM is `ocsp-signer` for the default
        CN, else the CN made file-safe. `ocsp_signing_eku=False` makes the broken signer that
        fault-injection tests need (clients must reject its responses).
        """
        stem = file_stem or (
            "ocsp-signer" if cn == DEFAULT_SIGNER_CN else re.sub(r"[^a-z0-9]+", "-", cn.lower())
        ).strip("-")
        if not cn.strip() or not stem or "/" in stem:
            raise CAError(CAErrorReason.BAD_NAME, self.directory, f"bad signer name {cn!r}")
        start, end = self._validity(days, not_before, not_after)
        signer_key = key.generate()
        subject = _cn(cn)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        )
        builder = self._sign_leaf(builder, signer_key.public_key())
        if ocsp_signing_eku:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=True
            )
        else:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        if nocheck:
            builder = builder.add_extension(x509.OCSPNoCheck(), critical=False)
        with self._locked():
            self._check_unique(subject_oneline(subject), self.entries())
            serial = self._next_serial()
            certificate = builder.serial_number(serial).sign(
                self.private_key, _digest_for(self.private_key)
            )
            self._record(certificate)
        cert_path = self.directory / "certs" / f"{stem}.pem"
        key_path = self.directory / "private" / f"{stem}.key"
        _write_private(key_path, _key_pem(signer_key))
        cert_path.write_bytes(_cert_pem(certificate))
        return SignerFiles(
            serial=serial,
            certificate=certificate,
            private_key=signer_key,
            cert_path=cert_path,
            key_path=key_path,
        )

    # -- revocation --------------------------------------------------------------------------

    def resolve(self, name_or_serial: str | int) -> IndexEntry:
        """The index entry meant by a certificate name (CN) or a serial (int, or hex text).

        A name wins over hex: `cafe` is the certificate named cafe when there is one. Among
        several entries with that name the valid one is chosen, as only one can be valid.
        """
        entries = self.entries()
        if isinstance(name_or_serial, str):
            subject = f"/CN={name_or_serial}"
            named = [e for e in entries if e.subject == subject]
            if named:
                valid = [e for e in named if e.status is EntryStatus.VALID]
                return (valid or named)[-1]
            text = name_or_serial.strip()
            text = text[2:] if text.lower().startswith("0x") else text
            try:
                serial = int(text, 16)
            except ValueError:
                raise CAError(
                    CAErrorReason.UNKNOWN_NAME,
                    self.index_path,
                    f"no certificate named {name_or_serial!r} and not a hex serial; "
                    "see the subjects and serials listed in this file",
                ) from None
        else:
            serial = name_or_serial
        for candidate in entries:
            if candidate.serial == serial:
                return candidate
        raise CAError(
            CAErrorReason.UNKNOWN_SERIAL,
            self.index_path,
            f"serial {format_serial(serial)} was not issued by this CA",
        )

    def revoke(
        self,
        name_or_serial: str | int,
        *,
        reason: str | None = None,
        when: dt.datetime | None = None,
    ) -> IndexEntry:
        """Mark a certificate revoked in index.txt exactly as `openssl ca -revoke` does.

        `reason` is one of openssl's `-crl_reason` names (case-insensitive); None writes the
        revocation time alone, as openssl does without `-crl_reason`.
        """
        canonical = None
        if reason is not None:
            matches = [r for r in REVOCATION_REASONS if r.lower() == reason.lower()]
            if not matches:
                raise CAError(
                    CAErrorReason.UNKNOWN_REASON,
                    self.index_path,
                    f"unknown revocation reason {reason!r}; use one of "
                    + ", ".join(REVOCATION_REASONS),
                )
            canonical = matches[0]
        revoked_at = when or self.clock.now()
        if revoked_at.tzinfo is None:
            raise ValueError("`when` must be timezone-aware")
        with self._locked():
            target = self.resolve(name_or_serial)
            if target.status is EntryStatus.REVOKED:
                raise CAError(
                    CAErrorReason.ALREADY_REVOKED,
                    self.index_path,
                    f"serial {format_serial(target.serial)} ({target.subject}) is already revoked",
                )
            updated = target.revoked(revoked_at, canonical)
            entries = [updated if e == target else e for e in self.entries()]
            write_index(self.index_path, entries)
        return updated

    def crl(
        self, *, days: int = 7, seconds: int | None = None, now: dt.datetime | None = None
    ) -> Path:
        """Write crl/crl.pem listing every revoked certificate; bumps crlnumber like openssl.

        nextUpdate is `seconds` after thisUpdate when given (short-lived CRLs for refresh and
        expiry tests), else `days`.
        """
        issued_at = now or self.clock.now()
        lifetime = dt.timedelta(days=days) if seconds is None else dt.timedelta(seconds=seconds)
        with self._locked():
            text = self.crlnumber_path.read_text(encoding="ascii").strip()
            try:
                number = int(text, 16)
            except ValueError:
                raise CAError(
                    CAErrorReason.NOT_A_CA, self.crlnumber_path, f"not a hex number: {text!r}"
                ) from None
            builder = (
                x509.CertificateRevocationListBuilder()
                .issuer_name(self.certificate.subject)
                .last_update(issued_at)
                .next_update(issued_at + lifetime)
                .add_extension(x509.CRLNumber(number), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(
                        self.private_key.public_key()
                    ),
                    critical=False,
                )
            )
            for entry in self.entries():
                if entry.status is not EntryStatus.REVOKED or entry.revoked_at is None:
                    continue
                revoked = (
                    x509.RevokedCertificateBuilder()
                    .serial_number(entry.serial)
                    .revocation_date(entry.revoked_at)
                )
                flag = crl_reason(entry.revocation_reason)
                if flag is not None:
                    revoked = revoked.add_extension(x509.CRLReason(flag), critical=False)
                builder = builder.add_revoked_certificate(revoked.build())
            crl = builder.sign(self.private_key, _digest_for(self.private_key))
            self.crl_path.parent.mkdir(exist_ok=True)
            self.crl_path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
            _replace_text(self.crlnumber_path, format_serial(number + 1) + "\n")
        return self.crl_path

    def set_default_ocsp_url(self, url: str | None) -> None:
        """Change the OCSP URL later `issue` calls (and `openssl ca`) put in certificates."""
        with self._locked():
            self.settings = CASettings(
                name=self.settings.name, ocsp_url=url, intermediate=self.settings.intermediate
            )
            self.config_path.write_text(
                openssl_cnf.render_openssl_cnf(
                    self.directory,
                    ocsp_url=url,
                    digest=_digest_for(self.private_key).name,
                ),
                encoding="utf-8",
            )
            (self.directory / SETTINGS_FILE).write_text(self.settings.to_json(), encoding="utf-8")
