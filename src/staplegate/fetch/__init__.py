"""The only code that talks to OCSP responders: the HTTP client and the request rate limits."""

from staplegate.fetch.http import (
    OCSP_RESPONSE_CONTENT_TYPE,
    FetchFailure,
    FetchResult,
    FetchSettings,
    OcspHttpClient,
    OcspHttpRequestLike,
)
from staplegate.fetch.ratelimit import FetchGate, HostRateLimiter, responder_key

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
