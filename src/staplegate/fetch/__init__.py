"""The only code that talks to OCSP responders: the HTTP client and the request gate."""

from staplegate.fetch.client import (
    OCSP_RESPONSE_CONTENT_TYPE,
    FetchFailure,
    FetchResult,
    FetchSettings,
    OcspHttpClient,
    OcspHttpRequestLike,
)
from staplegate.fetch.gate import FetchGate, HostRateLimiter, responder_key

__all__ = [
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
