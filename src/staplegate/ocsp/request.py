"""Build the OCSP request for a CertId and the HTTP request that carries it, as HAProxy does.

HAProxy sends an unsigned request with no nonce, by GET when `len(DER) + len(URI) < 255`
(the URI as written, before anything is appended) and by POST otherwise. A GET URL is the
URI, a `/` (always, even after a trailing `/`), then the standard base64 of the DER with
every byte outside `A-Za-z0-9-._~` percent-encoded in uppercase hex (as HAProxy builds it).

Headers come in HAProxy's order: `Content-Type` (POST only), `Host`, `Accept`, `User-Agent`.
HAProxy's User-Agent is `HAProxy`; ours, `fetch.client.USER_AGENT`, is given by the caller
(this core imports nothing outside ocsp/). This module only describes the request; `fetch/`
sends it.
"""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from cryptography.hazmat.primitives.serialization import Encoding

from staplegate.ocsp.certid import CertId

#: HAProxy's threshold: GET when len(request DER) + len(URI) is below it.
GET_LIMIT = 255
REQUEST_CONTENT_TYPE = "application/ocsp-request"
RESPONSE_CONTENT_TYPE = "application/ocsp-response"


class HttpMethod(enum.Enum):
    GET = "GET"
    POST = "POST"


class UriProblem(enum.Enum):
    """Why an OCSP URI cannot be used (HAProxy: an internal failure, status 0)."""

    EMPTY = "empty"
    UNSUPPORTED_SCHEME = "unsupported-scheme"
    NO_HOST = "no-host"


class OcspUriError(ValueError):
    """The certificate's OCSP URI cannot carry a request; `.reason` says why."""

    def __init__(self, reason: UriProblem, uri: str) -> None:
        self.reason = reason
        self.uri = uri
        texts = {
            UriProblem.EMPTY: "the certificate has no OCSP URI",
            UriProblem.UNSUPPORTED_SCHEME: f"OCSP URI {uri!r} is neither http:// nor https://",
            UriProblem.NO_HOST: f"OCSP URI {uri!r} has no host",
        }
        super().__init__(texts[reason] + "; check the certificate's AIA extension")


@dataclass(frozen=True)
class OcspHttpRequest:
    """Everything `fetch/` needs to send one OCSP request (absolute URL, ordered headers)."""

    method: HttpMethod
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def host(self) -> str:
        return dict(self.headers)["Host"]


def build_request(cert_id: CertId) -> bytes:
    """The DER OCSPRequest for `cert_id`: unsigned, one Request, no extensions (no nonce)."""
    return cert_id.request().public_bytes(Encoding.DER)


def get_url(uri: str, request_der: bytes) -> str:
    """RFC 6960 Appendix A GET URL, with HAProxy's unconditional `/` separator."""
    encoded = quote(base64.b64encode(request_der).decode("ascii"), safe="")
    return f"{uri}/{encoded}"


def http_request_for(uri: str, request_der: bytes, *, user_agent: str) -> OcspHttpRequest:
    """Choose GET or POST by HAProxy's rule and lay out the request (`user_agent` last)."""
    host = _authority(uri)
    if len(request_der) + len(uri) < GET_LIMIT:
        return OcspHttpRequest(
            method=HttpMethod.GET,
            url=get_url(uri, request_der),
            headers=(("Host", host), ("Accept", "*/*"), ("User-Agent", user_agent)),
            body=b"",
        )
    return OcspHttpRequest(
        method=HttpMethod.POST,
        url=uri,
        headers=(
            ("Content-Type", REQUEST_CONTENT_TYPE),
            ("Host", host),
            ("Accept", "*/*"),
            ("User-Agent", user_agent),
        ),
        body=request_der,
    )


def _authority(uri: str) -> str:
    """host[:port] as written in the URI (user info dropped), HAProxy's Host header."""
    if not uri:
        raise OcspUriError(UriProblem.EMPTY, uri)
    parts = urlsplit(uri)
    if parts.scheme.lower() not in ("http", "https"):
        raise OcspUriError(UriProblem.UNSUPPORTED_SCHEME, uri)
    authority = parts.netloc.rpartition("@")[2]
    if not parts.hostname:
        raise OcspUriError(UriProblem.NO_HOST, uri)
    return authority
