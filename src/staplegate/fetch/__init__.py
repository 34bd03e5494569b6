"""The only code that talks to OCSP responders and CRL servers: HTTP client, request gate."""

from staplegate.fetch.client import (
    DEFAULT_CRL_MAX_BODY,
    OCSP_RESPONSE_CONTENT_TYPE,
    FetchFailure,
    FetchResult,
    FetchSettings,
    OcspHttpClient,
    OcspHttpRequestLike,
)
from staplegate.fetch.gate import FetchGate, HostRateLimiter, responder_key

__all__ = [
    "DEFAULT_CRL_MAX_BODY",
    "OCSP_RESPONSE_CONTENT_TYPE",
    "FetchFailure",
    "FetchGate",
    "FetchResult",
    "FetchSettings",
    "HostRateLimiter",
    "OcspHttpClient",
    "OcspHttpRequestLike",
    "responder_key",
]
