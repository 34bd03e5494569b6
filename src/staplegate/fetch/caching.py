"""How long a responder says its answer stays fresh (RFC 9111 §4.2.1, RFC 5019 §6.2).

OCSP responders behind HTTP caches (RFC 5019/9919) label GET answers with `Cache-Control:
max-age` and `Expires`: asking again before that lapses returns the same response. The
scheduler (ocsp/schedule.py) uses the hint to avoid pointless refetches, within maxdelay and
never past the staple's withdrawal. A pure function of header values, so it is tested alone.
"""

from __future__ import annotations

import email.utils
import re

_MAX_AGE = re.compile(r"(?:^|,)\s*(s-maxage|max-age)\s*=\s*\"?(\d{1,10})\"?\s*(?=,|$)", re.I)
_NO_CACHE = re.compile(r"(?:^|,)\s*(no-cache|no-store)\s*(?=,|=|$)", re.I)


def fresh_for(
    *, cache_control: str | None, expires: str | None, date: str | None, age: str | None
) -> float | None:
    """Seconds the answer stays fresh from now, or None when the headers say nothing.

    `max-age` wins over `Expires` (RFC 9111 §5.3); `Expires` counts from the answer's `Date`
    (both from the responder's clock, so ours does not matter); an `Age` from a cache in
    between is subtracted; `no-cache`/`no-store` mean 0. Malformed values are no hint.
    """
    if cache_control is not None:
        if _NO_CACHE.search(cache_control):
            return 0.0
        ages = {name.lower(): int(value) for name, value in _MAX_AGE.findall(cache_control)}
        lifetime: float | None = ages.get("max-age", ages.get("s-maxage"))
    else:
        lifetime = None
    if lifetime is None and expires is not None and date is not None:
        try:
            expires_at = email.utils.parsedate_to_datetime(expires)
            date_at = email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            return None
        if expires_at.tzinfo is None or date_at.tzinfo is None:
            return None
        lifetime = (expires_at - date_at).total_seconds()
    if lifetime is None:
        return None
    current_age = int(age) if age is not None and age.strip().isdigit() else 0
    return max(lifetime - current_age, 0.0)
