"""Build the immutable pyOpenSSL server contexts of one bind and one generation.

Theory of operation: one `SSL.Context` per certificate of a bind, built up front in the
master before workers fork, so every worker shares the session-ticket keys OpenSSL generated
for each context (pyOpenSSL has no ticket-key API) and a ticket issued by one worker resumes
on another. A context is frozen once a connection used it (pyOpenSSL ≥ 26.2), so everything
is set here, once: certificate, key, chain, versions, ciphers, ALPN choice, session cache,
`MODE_RELEASE_BUFFERS` (halves idle memory) and the OCSP status callback with the
certificate's precomputed `StapleSlot`. A reload builds a new `TlsBind` (new generation);
the old one must stay referenced until its connections are gone (its contexts own the
callbacks' data).

The connection's context is picked from the ClientHello before the handshake (`SniIndex`),
so OpenSSL's servername callback, and its `set_context` pitfalls, are never used.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from OpenSSL import SSL, crypto

from staplegate.certs.model import LoadedCertificate
from staplegate.config.model import TlsVersion
from staplegate.tls.sni import SniEntry, SniIndex
from staplegate.tls.staples import StapleSlot, ocsp_status_callback

# OpenSSL's protocol version constants for the model's `TlsVersion` (config owns the type:
# it is a value of the configuration; only the OpenSSL mapping belongs here)
_OPENSSL_VERSION = {
    TlsVersion.SSLV3: SSL.SSL3_VERSION,
    TlsVersion.TLSV10: SSL.TLS1_VERSION,
    TlsVersion.TLSV11: SSL.TLS1_1_VERSION,
    TlsVersion.TLSV12: SSL.TLS1_2_VERSION,
    TlsVersion.TLSV13: SSL.TLS1_3_VERSION,
}
_NO_VERSION = {
    TlsVersion.SSLV3: SSL.OP_NO_SSLv3,
    TlsVersion.TLSV10: SSL.OP_NO_TLSv1,
    TlsVersion.TLSV11: SSL.OP_NO_TLSv1_1,
    TlsVersion.TLSV12: SSL.OP_NO_TLSv1_2,
    TlsVersion.TLSV13: SSL.OP_NO_TLSv1_3,
}


@dataclass(frozen=True)
class TlsBindSettings:
    """A bind line's TLS options (filled from config `Bind` + global ssl-default-bind-*).

    `alpn` is in preference order (`alpn h2,http/1.1`); None means no ALPN answer at all.
    HAProxy's default minimum is TLSv1.2. `session_cache=False` is `tune.ssl.cachesize 0`.
    """

    alpn: tuple[str, ...] | None = None
    min_version: TlsVersion | None = TlsVersion.TLSV12
    max_version: TlsVersion | None = None
    disabled: frozenset[TlsVersion] = frozenset()  # `no-tlsv10` …: holes in the range
    ciphers: str | None = None
    ciphersuites: str | None = None
    no_tls_tickets: bool = False
    prefer_client_ciphers: bool = False
    strict_sni: bool = False
    session_cache: bool = True
    session_timeout_s: int = 300
    dh_param_file: str | None = None  # `ssl-dh-param-file`: offer DHE with these parameters


class ClientVerify(enum.Enum):
    """HAProxy's `verify`: whether a client certificate is asked for and needed."""

    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


IGNORE_ALL = -1  # in an ignore set: every verification error (`crt-ignore-err all`)


@dataclass(frozen=True)
class ClientVerification:
    """Client-certificate checking for one context (bind options, or a crt-list line's).

    `ca_certificates` are the trust anchors (HAProxy's `ca-file`, also sent as the
    acceptable CA names), `crls` turn on CRL checks for the whole chain (`crl-file`,
    X509_V_FLAG_CRL_CHECK|CRL_CHECK_ALL as HAProxy sets them). An error at depth 0 is
    forgiven when its code is in `crt_ignore`, above depth 0 when in `ca_ignore`.
    """

    verify: ClientVerify = ClientVerify.NONE
    ca_certificates: tuple[x509.Certificate, ...] = ()
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    ca_ignore: frozenset[int] = frozenset()
    crt_ignore: frozenset[int] = frozenset()
    where: str = ""  # the config line, for messages

    @property
    def asks(self) -> bool:
        return self.verify is not ClientVerify.NONE

    @property
    def forgives(self) -> bool:
        """Some verification error may be let through (`ca-ignore-err`/`crt-ignore-err`)."""
        return self.asks and bool(self.ca_ignore or self.crt_ignore)


NO_CLIENT_VERIFICATION = ClientVerification()


def load_client_ca(path: str) -> tuple[x509.Certificate, ...]:
    """Every certificate of a PEM `ca-file`; raises `ValueError`/`OSError` with the reason."""
    with open(path, "rb") as file:
        data = file.read()
    certificates = tuple(x509.load_pem_x509_certificates(data))
    if not certificates:
        raise ValueError("no PEM certificate in it")
    return certificates


def load_crls(path: str) -> tuple[x509.CertificateRevocationList, ...]:
    """Every CRL of a PEM `crl-file` (several may be concatenated)."""
    with open(path, "rb") as file:
        data = file.read()
    marker = b"-----BEGIN X509 CRL-----"
    blocks = [marker + part for part in data.split(marker)[1:]]
    if not blocks:
        raise ValueError("no PEM CRL in it")
    return tuple(x509.load_pem_x509_crl(block) for block in blocks)


def _verify_callback(verification: ClientVerification) -> object:
    """The callback OpenSSL calls per certificate of the client's chain; never raises.

    It forgives ignored errors (HAProxy's ca-ignore-err/crt-ignore-err) and records the
    first error on the endpoint (its `ssl_c_verify`, as HAProxy keeps the first error even
    when ignored). A set lookup and an attribute write, nothing more.
    """
    ca_ignore = verification.ca_ignore
    crt_ignore = verification.crt_ignore

    def verify(conn: SSL.Connection, _cert: crypto.X509, error: int, depth: int, ok: int) -> bool:
        if ok:
            return True
        try:
            recorder = conn.get_app_data()
            if recorder is not None and not recorder.client_verify_error:
                recorder.client_verify_error = error
            ignored = ca_ignore if depth > 0 else crt_ignore
            return IGNORE_ALL in ignored or error in ignored
        except Exception:
            return False

    return verify


def _set_client_verification(ctx: SSL.Context, verification: ClientVerification, here: str) -> None:
    if not verification.asks:
        return
    if not verification.ca_certificates:
        raise TlsSetupError(TlsSetupErrorReason.NO_CLIENT_CA, here)
    store = ctx.get_cert_store()
    assert store is not None  # a server context always has one
    try:
        for ca in verification.ca_certificates:
            store.add_cert(crypto.X509.from_cryptography(ca))
            ctx.add_client_ca(ca)
        for crl in verification.crls:
            store.add_crl(crl)
    except (SSL.Error, crypto.Error, TypeError, ValueError) as error:
        raise TlsSetupError(TlsSetupErrorReason.BAD_CLIENT_CA, here, type(error).__name__) from None
    if verification.crls:
        store.set_flags(crypto.X509StoreFlags.CRL_CHECK | crypto.X509StoreFlags.CRL_CHECK_ALL)
    mode = SSL.VERIFY_PEER
    if verification.verify is ClientVerify.REQUIRED:
        mode |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
    ctx.set_verify(mode, _verify_callback(verification))  # type: ignore[arg-type]


@dataclass(frozen=True)
class CertificateBinding:
    """One certificate on a bind: `crt` argument or crt-list line, with the line's overrides."""

    certificate: LoadedCertificate
    sni_filters: tuple[str, ...] = ()
    alpn: tuple[str, ...] | None = None
    min_version: TlsVersion | None = None
    max_version: TlsVersion | None = None
    ciphers: str | None = None
    ciphersuites: str | None = None
    client: ClientVerification = NO_CLIENT_VERIFICATION


class TlsSetupErrorReason(enum.Enum):
    CERTIFICATE_REJECTED = "OpenSSL refused the certificate or its key"
    KEY_MISMATCH = "the private key does not match the certificate"
    BAD_CIPHERS = "OpenSSL accepts none of the ciphers"
    BAD_CIPHERSUITES = "OpenSSL accepts none of the TLS 1.3 ciphersuites"
    BAD_VERSIONS = "ssl-min-ver is above ssl-max-ver"
    BAD_DH_PARAMS = "OpenSSL cannot load the DH parameters of 'ssl-dh-param-file'"
    NO_CERTIFICATE = "a TLS bind needs at least one certificate"
    NO_CLIENT_CA = "verify is enabled but no CA file specified ('ca-file')"
    BAD_CLIENT_CA = "OpenSSL refused a client CA certificate or CRL"


class TlsSetupError(Exception):
    """A bind's TLS settings or a certificate cannot make a working context."""

    def __init__(self, reason: TlsSetupErrorReason, where: str, detail: str = "") -> None:
        text = f"{where}: {reason.value}"
        super().__init__(f"{text} ({detail})" if detail else text)
        self.reason = reason
        self.where = where
        self.detail = detail


@dataclass(frozen=True, eq=False)
class ServerContext:
    """A certificate's ready-made context and its staple slot (identity-compared)."""

    binding: CertificateBinding
    context: SSL.Context = field(repr=False)
    slot: StapleSlot
    alpn: tuple[bytes, ...]

    @property
    def certificate(self) -> LoadedCertificate:
        return self.binding.certificate


@dataclass(frozen=True, eq=False)
class TlsBind:
    """Everything a listener needs to terminate TLS for one bind line and generation."""

    name: str
    generation: int
    settings: TlsBindSettings
    contexts: tuple[ServerContext, ...]
    sni: SniIndex[ServerContext]


def _alpn_selector(server: tuple[bytes, ...]) -> object:
    """Server-preference choice, as SSL_select_next_proto does for HAProxy; never raises."""

    def select(conn: SSL.Connection, offered: list[bytes]) -> bytes | object:
        try:
            for protocol in server:
                if protocol in offered:
                    return protocol
        except Exception:
            pass
        return SSL.NO_OVERLAPPING_PROTOCOLS

    return select


def _session_id_context(name: str, generation: int, client: ClientVerification) -> bytes:
    # At most 32 bytes; distinct per certificate, generation and client-certificate policy
    # so a session never resumes under another certificate's context, nor one established
    # without a client certificate under a line that requires one.
    text = f"{generation}\0{name}\0{client.verify.value}\0{client.where}"
    return hashlib.sha256(text.encode()).digest()[:32]


def build_context(
    binding: CertificateBinding,
    settings: TlsBindSettings,
    *,
    generation: int,
    where: str = "bind",
) -> ServerContext:
    """One immutable server context for `binding` under the bind's `settings`."""
    cert = binding.certificate
    here = f"{where} crt {cert.name}"
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    options = SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION
    if not settings.prefer_client_ciphers:
        options |= SSL.OP_CIPHER_SERVER_PREFERENCE
    # An error forgiven by an ignore list is reset to "ok" by pyOpenSSL before OpenSSL stores
    # the session, so a resumed session would report ssl_c_verify 0: never resume there.
    resumable = settings.session_cache and not binding.client.forgives
    if settings.no_tls_tickets or not resumable:
        options |= SSL.OP_NO_TICKET
    for version in settings.disabled:
        options |= _NO_VERSION[version]
    ctx.set_options(options)
    ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)

    low = binding.min_version or settings.min_version
    high = binding.max_version or settings.max_version
    if low and high and _OPENSSL_VERSION[low] > _OPENSSL_VERSION[high]:
        raise TlsSetupError(TlsSetupErrorReason.BAD_VERSIONS, here, f"{low.value} > {high.value}")
    if low:
        ctx.set_min_proto_version(_OPENSSL_VERSION[low])
    if high:
        ctx.set_max_proto_version(_OPENSSL_VERSION[high])
    ciphers = binding.ciphers or settings.ciphers
    if ciphers:
        try:
            ctx.set_cipher_list(ciphers.encode("ascii"))
        except (SSL.Error, UnicodeEncodeError) as error:
            raise TlsSetupError(TlsSetupErrorReason.BAD_CIPHERS, here, ciphers) from error
    suites = binding.ciphersuites or settings.ciphersuites
    if suites:
        try:
            ctx.set_tls13_ciphersuites(suites.encode("ascii"))
        except (SSL.Error, UnicodeEncodeError) as error:
            raise TlsSetupError(TlsSetupErrorReason.BAD_CIPHERSUITES, here, suites) from error

    try:
        ctx.use_certificate(cert.leaf)
        ctx.use_privatekey(cert.private_key)  # type: ignore[arg-type]
        for extra in cert.chain:
            ctx.add_extra_chain_cert(extra)
    except (SSL.Error, TypeError, ValueError) as error:
        raise TlsSetupError(
            TlsSetupErrorReason.CERTIFICATE_REJECTED, here, type(error).__name__
        ) from None  # OpenSSL's text may quote key material paths only; keep it short
    try:
        ctx.check_privatekey()
    except SSL.Error:
        raise TlsSetupError(TlsSetupErrorReason.KEY_MISMATCH, here) from None

    if settings.dh_param_file is not None:
        try:
            ctx.load_tmp_dh(settings.dh_param_file)
        except (SSL.Error, OSError) as error:
            raise TlsSetupError(
                TlsSetupErrorReason.BAD_DH_PARAMS, here, settings.dh_param_file
            ) from error
    _set_client_verification(ctx, binding.client, here)
    ctx.set_session_id(_session_id_context(cert.name, generation, binding.client))
    if resumable:
        ctx.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
        ctx.set_timeout(settings.session_timeout_s)
    else:
        ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)

    slot = StapleSlot(
        key=cert.cert_id.der if cert.cert_id is not None else None,
        certificate=cert.name,
        must_staple=cert.must_staple,
        generation=generation,
    )
    ctx.set_ocsp_server_callback(ocsp_status_callback, slot)

    alpn_names = binding.alpn if binding.alpn is not None else settings.alpn
    alpn = tuple(name.encode("ascii") for name in alpn_names or ())
    if alpn:
        ctx.set_alpn_select_callback(_alpn_selector(alpn))  # type: ignore[arg-type]
    return ServerContext(binding=binding, context=ctx, slot=slot, alpn=alpn)


def build_tls_bind(
    name: str,
    bindings: Sequence[CertificateBinding],
    settings: TlsBindSettings,
    *,
    generation: int,
) -> TlsBind:
    """All contexts of a bind (first binding = default certificate) plus its SNI index."""
    if not bindings:
        raise TlsSetupError(TlsSetupErrorReason.NO_CERTIFICATE, name)
    contexts = tuple(
        build_context(b, settings, generation=generation, where=name) for b in bindings
    )
    entries = [
        SniEntry(
            value=sc,
            names=sc.certificate.names,
            key_algorithm=sc.certificate.key_type.algorithm,
            sni_filters=sc.binding.sni_filters,
            must_staple_key=sc.slot.key if sc.slot.must_staple else None,
        )
        for sc in contexts
    ]
    return TlsBind(
        name=name,
        generation=generation,
        settings=settings,
        contexts=contexts,
        sni=SniIndex(entries, strict_sni=settings.strict_sni),
    )
