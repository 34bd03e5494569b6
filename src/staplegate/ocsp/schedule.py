"""When to ask the responder next: HAProxy's formulas (docs/explanation/ocsp-engine.md) plus jitter.

Theory of operation. Everything is a pure function of `now`, the withdrawal time (`expire`,
nextUpdate - `verify.WITHDRAWAL_MARGIN`) of the staple we hold, if any, and `UpdateSettings`.

- `base_refresh_at` is HAProxy's `ssl_ocsp_update_next_update` (§4.3)::

      t = min(now + maxdelay, expire - margin)       # expire-less: due now
      if a staple is held: t = max(t, now + mindelay)

  It is used after a success and when an entry is first queued (a certificate with no
  staple is due at once, HAProxy's "fetch right after startup").
- `refresh_at_after_failure` is HAProxy's backoff (§4.4): `max(base, now + replay)` with
  `replay = min(60 * 2**streak, maxdelay)` and `streak` counting this failure, so the
  sequence is 120, 240, 480, 960, 1920, then maxdelay (3600 by default) — the spec's
  measured numbers, not the 60 s its source comment promises. A held staple usually makes
  `base` win: with a 7-day staple a failed refresh is retried after maxdelay.
- `jitter` is ours: HAProxy keeps certificates loaded together in lock-step forever. We pull
  each attempt *earlier* by a random fraction (up to `settings.jitter`, 10 %) of its delay,
  from an injected `random.Random`. Moving only earlier means a jittered attempt never lands
  past the staple's withdrawal time and never exceeds maxdelay (the cap HAProxy documents as
  "upper bound between two refreshes"); a floor keeps it at least 1 s (and mindelay, when a
  staple is held) after now.
- Also ours: after any success or failure the next attempt is at least 1 s away, so a
  configuration of `mindelay 0`/`maxdelay 0` (HAProxy accepts both) cannot spin.
- Also ours, the responder's caching hint (`fresh_until`, from Cache-Control max-age or
  Expires; fetch/caching.py): after a success the next attempt is not before the answer can
  have changed — `max(formula, min(fresh_until, now + maxdelay))`, because of the hint never
  later than margin/2 before the withdrawal — and jitter does not pull it before
  `fresh_until` either.
  `update ssl ocsp-response` still fetches at once.
- Also ours, `refresh_at_start`: a staple loaded at start (state directory, `.ocsp` file) is
  refreshed as if the process had never stopped — HAProxy's formula applied at the moment
  the staple was fetched (its producedAt or thisUpdate, whichever is later and not in the
  future), not at the start time, so a restart never stretches the gap between two questions
  to the responder beyond maxdelay. Staples already overdue are spread over the first
  `jitter * maxdelay` (at most until their withdrawal) instead of all going out at once.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

#: HAProxy's failure replay base: the n-th consecutive failure waits 60 * 2**n seconds.
REPLAY_BASE = 60
#: No attempt after a result is ever scheduled sooner than this.
MIN_GAP = dt.timedelta(seconds=1)
_MAX_STREAK = 32  # 60 * 2**32 s is far beyond any maxdelay; avoids huge integers


@dataclass(frozen=True)
class UpdateSettings:
    """`ocsp-update.mindelay` / `maxdelay` (seconds), the 60 s margin, and our jitter."""

    mindelay: int = 300
    maxdelay: int = 3600
    margin: int = 60
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.mindelay < 0 or self.maxdelay < 0 or self.margin < 0:
            raise ValueError("mindelay, maxdelay and margin must be >= 0 seconds")
        if self.mindelay > self.maxdelay:
            raise ValueError(
                f"mindelay ({self.mindelay}) can not be higher than maxdelay ({self.maxdelay})"
            )
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be a fraction in [0, 1), not {self.jitter}")


def _seconds(value: int) -> dt.timedelta:
    return dt.timedelta(seconds=value)


def base_refresh_at(
    *, now: dt.datetime, expire: dt.datetime | None, settings: UpdateSettings
) -> dt.datetime:
    """HAProxy's next update time after a success or at insertion (§4.3), before jitter.

    `expire` is the withdrawal time of the staple held now (None: no staple, due now).
    """
    if expire is None:
        return now
    candidate = min(now + _seconds(settings.maxdelay), expire - _seconds(settings.margin))
    return max(candidate, now + _seconds(settings.mindelay))


def fetched_at(
    *, produced_at: dt.datetime, this_update: dt.datetime, now: dt.datetime
) -> dt.datetime:
    """When a stored staple was (at the latest) fetched: the later of producedAt and
    thisUpdate that is not in the future; `now` when both are (a responder's clock ahead)."""
    past = [t for t in (produced_at, this_update) if t <= now]
    return max(past) if past else now


def refresh_at_start(
    *,
    now: dt.datetime,
    fetched: dt.datetime,
    expire: dt.datetime,
    settings: UpdateSettings,
    rng: random.Random,
) -> dt.datetime:
    """The first attempt, jittered, for a staple loaded at start and fetched at `fetched`.

    HAProxy's formula as of `fetched`, jittered like any attempt; when that is already past,
    a random point in the next `jitter * maxdelay` seconds (never after the withdrawal time
    less the margin).
    """
    due = base_refresh_at(now=fetched, expire=expire, settings=settings)
    if due > now:
        return jitter(due, now=now, expire=expire, settings=settings, rng=rng)
    spread = min(
        settings.jitter * settings.maxdelay,
        max((expire - _seconds(settings.margin) - now).total_seconds(), 0.0),
    )
    return now + dt.timedelta(seconds=spread * rng.random())


def backoff_delay(consecutive_failures: int, settings: UpdateSettings) -> dt.timedelta:
    """HAProxy's replay delay for the n-th failure in a row (n >= 1): 120 s, 240 s, ..."""
    if consecutive_failures < 1:
        raise ValueError("consecutive_failures counts this failure, so it is at least 1")
    streak = min(consecutive_failures, _MAX_STREAK)
    return _seconds(min(REPLAY_BASE * 2**streak, settings.maxdelay))


def refresh_at_after_success(
    *,
    now: dt.datetime,
    expire: dt.datetime,
    settings: UpdateSettings,
    fresh_until: dt.datetime | None = None,
) -> dt.datetime:
    """After installing a staple withdrawn at `expire`: HAProxy's formula, at least 1 s.

    With the responder's caching hint `fresh_until` (ours, RFC 5019/9919): not before the
    answer can have changed, `max(formula, min(fresh_until, now + maxdelay))`, but because
    of the hint never later than half the margin before the withdrawal time, so the fetch
    itself has 30 s before the staple would be withdrawn.
    """
    attempt = max(base_refresh_at(now=now, expire=expire, settings=settings), now + MIN_GAP)
    if fresh_until is not None:
        latest = expire - _seconds(settings.margin) / 2
        hinted = min(fresh_until, now + _seconds(settings.maxdelay), latest)
        attempt = max(attempt, hinted)
    return attempt


def refresh_at_after_failure(
    *,
    now: dt.datetime,
    expire: dt.datetime | None,
    consecutive_failures: int,
    settings: UpdateSettings,
) -> dt.datetime:
    """After a failed attempt (this one counted in `consecutive_failures`), before jitter."""
    base = base_refresh_at(now=now, expire=expire, settings=settings)
    replay = backoff_delay(consecutive_failures, settings)
    return max(base, now + replay, now + MIN_GAP)


def jitter(
    attempt: dt.datetime,
    *,
    now: dt.datetime,
    expire: dt.datetime | None,
    settings: UpdateSettings,
    rng: random.Random,
    not_before: dt.datetime | None = None,
) -> dt.datetime:
    """Pull `attempt` earlier by up to `settings.jitter` of its delay; never past a floor.

    The floor is now + 1 s, or now + mindelay while a staple is held, or `not_before` (the
    responder's caching hint) when later; an attempt already sooner than the floor (e.g. due
    now at startup) is left alone.
    """
    delay = attempt - now
    if delay <= dt.timedelta(0) or settings.jitter == 0:
        return attempt
    earlier = delay * (settings.jitter * rng.random())
    floor = now + max(MIN_GAP, _seconds(settings.mindelay) if expire is not None else MIN_GAP)
    if not_before is not None:
        floor = max(floor, not_before)
    return max(attempt - earlier, min(attempt, floor))
