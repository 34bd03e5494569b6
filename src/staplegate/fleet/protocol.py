"""The fleet's protocol on Redis, without Redis: key names, scripts, messages, staple times.

Sans-IO like ocsp/: nothing here connects, sleeps or reads a clock, so the rules are
unit-tested on plain values. Everything read back from Redis is untrusted: the parsers here
return None for anything malformed and never raise; the real verdict on a staple is the
same `verify_response` a fetched answer gets (the updater's machine decides).

Keys (one namespace, `staplegate:`; a CertId is its SHA-1 hex, the staple table's key):

- `staplegate:staple:<certid>` — the DER of the newest staple any instance fetched, with a
  time to live until its nextUpdate;
- `staplegate:lease:<certid>` — the single-flight lease: a random token, set with
  `SET NX PX`, renewed while the fetch runs (`RENEW_SCRIPT`), removed with a
  compare-and-delete (`RELEASE_SCRIPT`) so an instance never frees a lease that expired and
  was taken by another;
- `staplegate:rate:<host>` — the fleet's token bucket for one responder host (`RATE_SCRIPT`);
- channel `staplegate:staples` — one message per new staple: the CertId hex, a space and the
  announcing instance's random id (so an instance ignores its own announcements, which its
  listener may read late, after its next flight began).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from cryptography.x509 import ocsp

from staplegate.ocsp.certid import CertId

NAMESPACE = "staplegate"
CHANNEL = f"{NAMESPACE}:staples"

#: Renew the lease only while it is still ours (the token matches); 1 renewed, 0 lost.
RENEW_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
#: Delete the lease only while it is still ours; 1 released, 0 it was no longer ours.
RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""

#: A token bucket per responder host shared by the fleet (`ocsp-update.rate-limit`), timed
#: by Redis's own clock. Each call takes a token at once, going into debt when there is none,
#: and returns how long to wait for it (as a string: Redis turns Lua numbers into integers):
#: callers are queued by the bucket itself, one call per request, no retry storm.
RATE_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate) - 1
local wait = 0
if tokens < 0 then wait = -tokens / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return tostring(wait)
"""

_HEX_CERT_ID = re.compile(r"[0-9a-f]{40,200}")


def staple_key(cert_id: CertId) -> str:
    return f"{NAMESPACE}:staple:{cert_id.hex}"


def lease_key(cert_id: CertId) -> str:
    return f"{NAMESPACE}:lease:{cert_id.hex}"


def rate_key(host: str) -> str:
    """The fleet's token bucket for one responder host (`fetch.gate.responder_key`)."""
    return f"{NAMESPACE}:rate:{host}"


_ORIGIN = re.compile(r"[0-9a-f]{1,64}")


def announcement(cert_id: CertId, origin: str) -> str:
    """The message announcing `cert_id`'s new staple, from instance `origin`."""
    return f"{cert_id.hex} {origin}"


def parse_message(data: object) -> tuple[str, str | None] | None:
    """(CertId hex, announcing instance or None) of a `staplegate:staples` message, or None
    when it is not one."""
    if isinstance(data, bytes):
        try:
            data = data.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(data, str):
        return None
    parts = data.strip().lower().split(" ")
    if len(parts) > 2 or not _HEX_CERT_ID.fullmatch(parts[0]):
        return None
    if len(parts) == 1:
        return parts[0], None
    return (parts[0], parts[1]) if _ORIGIN.fullmatch(parts[1]) else None


@dataclass(frozen=True)
class StapleTimes:
    """What a quick, unverified look at a DER response says; only for choosing what to verify."""

    this_update: dt.datetime
    next_update: dt.datetime | None


def staple_times(der: bytes) -> StapleTimes | None:
    """The first SingleResponse's times, or None for anything that does not parse."""
    try:
        response = ocsp.load_der_ocsp_response(der)
        if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
            return None
        return StapleTimes(response.this_update_utc, response.next_update_utc)
    except Exception:  # untrusted bytes: cryptography parses lazily and raises many types
        return None


def ttl_ms(next_update: dt.datetime | None, now: dt.datetime) -> int | None:
    """How long Redis keeps a staple: until its nextUpdate (None: already past it)."""
    if next_update is None:
        return 24 * 3600 * 1000  # no nextUpdate never verifies; keep the key bounded anyway
    remaining = (next_update - now).total_seconds()
    return int(remaining * 1000) if remaining >= 1 else None
