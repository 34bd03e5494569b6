"""The CRL watch's core: which CRL to fetch when, and what each fetch says per certificate.

Sans-IO like the OCSP machine: no socket, no file, no clock of its own. The caller (the
updater, in a later step) asks `due(now)` which CRL URLs to fetch, fetches each once through
the shared fetch gate, and hands the body or the failure back (`fetched` / `failed`). One
fetch serves every certificate sharing the URL: the CRL is verified once per issuer and
judged per certificate.

Scheduling follows the OCSP updater (ocsp/schedule.py): after a success the next fetch is at
the CRL's nextUpdate pulled earlier by the same jitter, never later than nextUpdate; after a
failure HAProxy's replay backoff (120 s, 240 s, ... up to maxdelay). A failed fetch or a CRL
that fails verification keeps the last verified verdict: bad input never marks a certificate
revoked, and never erases a revocation already seen.

`to_json` / `restore` carry the verdicts across a restart (the state directory holds one
small JSON per CRL URL, named by `state_file_name`); stored verdicts are untrusted input,
applied only to the same path and serial.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from staplegate.crl.verify import CrlError, CrlStatus, VerifiedCrl, crl_urls, verify_crl
from staplegate.ocsp.schedule import (
    MIN_GAP,
    REPLAY_BASE,
    UpdateSettings,
    backoff_delay,
    jitter,
)

#: Prefix of every CRL watch log line, modelled on HAProxy's `<OCSP-UPDATE>`.
LOG_TAG = "<CRL-UPDATE>"
#: The result word of a successful fetch in the log line.
RESULT_OK = "ok"
#: The result word when the CRL was fetched but did not verify.
RESULT_CHECK_FAILURE = "check-failure"


class WatchStatus(enum.Enum):
    """What the watch knows of one certificate: unknown until a CRL has verified."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CrlTarget:
    """One configured certificate to watch, with the issuer its CRL must be signed by."""

    path: str
    certificate: x509.Certificate
    issuer: x509.Certificate


@dataclass(frozen=True, slots=True)
class WatchVerdict:
    """The last verified answer for one certificate."""

    status: WatchStatus
    serial: int
    reason: str | None = None
    revocation_time: dt.datetime | None = None


UNKNOWN_VERDICT_SERIAL = -1


@dataclass(slots=True)
class CrlSource:
    """One CRL URL and every certificate it answers for."""

    url: str
    targets: list[CrlTarget]
    verdicts: dict[str, WatchVerdict] = field(default_factory=dict)
    this_update: dt.datetime | None = None
    next_update: dt.datetime | None = None
    next_refresh: dt.datetime | None = None
    last_success: dt.datetime | None = None
    successes: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_detail: str = ""
    mirrors: list[str] = field(default_factory=list)
    """The certificates' other http(s) distribution points, asked when `url` fails."""
    answering: str | None = None
    """The URL that answered last (asked first next time); None: `url`."""

    def fetch_order(self) -> list[str]:
        """`url` and its mirrors, the one that answered last first."""
        order = [self.url, *self.mirrors]
        if self.answering in order and self.answering != self.url:
            order.remove(self.answering)
            order.insert(0, self.answering)
        return order

    def verdict(self, path: str) -> WatchVerdict:
        return self.verdicts.get(path, WatchVerdict(WatchStatus.UNKNOWN, UNKNOWN_VERDICT_SERIAL))


@dataclass(frozen=True, slots=True)
class WatchLog:
    """A line for the log: `alert` lines (a certificate became revoked) go at ALERT level."""

    message: str
    alert: bool = False
    revoked: CrlTarget | None = None
    """On an alert: the certificate that became revoked (its verdict is `verdict`)."""
    verdict: WatchVerdict | None = None


def watched_url(certificate: x509.Certificate) -> str | None:
    """The CRL URL the watch fetches for `certificate`: its first http(s) one, if any (the
    others are its source's mirrors, asked when it fails)."""
    urls = crl_urls(certificate)
    return urls[0] if urls else None


def state_file_name(url: str) -> str:
    """The state directory file holding one CRL URL's verdicts."""
    return "crl-" + hashlib.sha256(url.encode()).hexdigest()[:32] + ".json"


def _line(source: CrlSource, result: str, detail: str) -> str:
    return f'{LOG_TAG} {source.url} {result} "{detail}" {source.failures} {source.successes}'


class CrlWatch:
    """Every watched CRL URL, its schedule and its per-certificate verdicts."""

    def __init__(
        self,
        targets: Iterable[CrlTarget],
        *,
        now: dt.datetime,
        settings: UpdateSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings or UpdateSettings()
        self._rng = rng or random.Random()
        self.sources: dict[str, CrlSource] = {}
        for target in targets:
            url = watched_url(target.certificate)
            if url is None:
                continue
            source = self.sources.setdefault(url, CrlSource(url, [], next_refresh=now))
            source.targets.append(target)
            for mirror in crl_urls(target.certificate)[1:]:
                if mirror != url and mirror not in source.mirrors:
                    source.mirrors.append(mirror)

    def due(self, now: dt.datetime) -> list[str]:
        """The URLs whose refresh time has come, earliest first."""
        ready = [s for s in self.sources.values() if s.next_refresh and s.next_refresh <= now]
        ready.sort(key=lambda s: (s.next_refresh, s.url))
        return [s.url for s in ready]

    def next_wake(self) -> dt.datetime | None:
        """The earliest refresh time of any URL (None: nothing to watch)."""
        times = [s.next_refresh for s in self.sources.values() if s.next_refresh is not None]
        return min(times, default=None)

    def fetched(self, url: str, body: bytes, now: dt.datetime) -> list[WatchLog]:
        """A fetch of `url` returned `body`: verify it once per issuer, judge each certificate."""
        source = self.sources[url]
        verified: dict[bytes, VerifiedCrl | CrlError] = {}
        new: dict[str, WatchVerdict] = {}
        problems: list[str] = []
        this_update = next_update = None
        for target in source.targets:
            key = target.issuer.fingerprint(hashes.SHA256())
            crl = verified.get(key)
            if crl is None:
                try:
                    crl = verify_crl(body, target.issuer, now=now)
                except CrlError as exc:
                    crl = exc
                verified[key] = crl
            if isinstance(crl, CrlError):
                problems.append(f"{target.path}: {crl}")
                continue
            try:
                judged = crl.verdict_for(target.certificate)
            except CrlError as exc:
                problems.append(f"{target.path}: {exc}")
                continue
            this_update, next_update = judged.this_update, judged.next_update
            status = WatchStatus.REVOKED if judged.status is CrlStatus.REVOKED else WatchStatus.GOOD
            new[target.path] = WatchVerdict(
                status, judged.serial, judged.revocation_reason, judged.revocation_time
            )
        if not new:
            return self._failure(source, now, RESULT_CHECK_FAILURE, "; ".join(problems))
        logs: list[WatchLog] = []
        for path, verdict in new.items():
            before = source.verdict(path)
            if verdict.status is WatchStatus.REVOKED and before.status is not WatchStatus.REVOKED:
                when = verdict.revocation_time.isoformat() if verdict.revocation_time else "-"
                logs.append(
                    WatchLog(
                        f"{LOG_TAG} certificate {path} is REVOKED by its CRL {url} "
                        f"(reason {verdict.reason or 'unspecified'}, revoked at {when})",
                        alert=True,
                        revoked=next(t for t in source.targets if t.path == path),
                        verdict=verdict,
                    )
                )
            source.verdicts[path] = verdict
        assert next_update is not None
        source.this_update, source.next_update = this_update, next_update
        source.last_success = now
        source.successes += 1
        source.consecutive_failures = 0
        revoked_count = sum(v.status is WatchStatus.REVOKED for v in new.values())
        detail = f"{len(new)} certificate(s), {revoked_count} revoked"
        if problems:
            detail += "; not judged: " + "; ".join(problems)
        source.last_detail = detail
        # a CRL at or past its nextUpdate (still current within the skew: the CA is late)
        # is asked for again after REPLAY_BASE seconds, not every second
        if next_update > now + MIN_GAP:
            attempt = next_update
        else:
            attempt = now + dt.timedelta(seconds=REPLAY_BASE)
        source.next_refresh = min(
            jitter(attempt, now=now, expire=None, settings=self._settings, rng=self._rng),
            attempt,
        )
        logs.insert(0, WatchLog(_line(source, RESULT_OK, detail)))
        return logs

    def failed(self, url: str, result: str, detail: str, now: dt.datetime) -> list[WatchLog]:
        """A fetch of `url` failed (`result` is the fetch failure's name): back off, keep
        the last verdicts."""
        return self._failure(self.sources[url], now, result, detail)

    def _failure(
        self, source: CrlSource, now: dt.datetime, result: str, detail: str
    ) -> list[WatchLog]:
        source.failures += 1
        source.consecutive_failures += 1
        source.last_detail = detail
        attempt = now + max(backoff_delay(source.consecutive_failures, self._settings), MIN_GAP)
        source.next_refresh = jitter(
            attempt, now=now, expire=None, settings=self._settings, rng=self._rng
        )
        return [WatchLog(_line(source, result, detail))]

    def to_json(self, url: str) -> bytes:
        """What the state directory keeps for `url`: its CRL times and verified verdicts."""
        source = self.sources[url]
        document = {
            "url": url,
            "this_update": _iso(source.this_update),
            "next_update": _iso(source.next_update),
            "last_success": _iso(source.last_success),
            "verdicts": {
                path: {
                    "status": v.status.value,
                    "serial": v.serial,
                    "reason": v.reason,
                    "revocation_time": _iso(v.revocation_time),
                }
                for path, v in source.verdicts.items()
                if v.status is not WatchStatus.UNKNOWN
            },
        }
        return json.dumps(document, sort_keys=True).encode()

    def restore(self, url: str, data: bytes, now: dt.datetime) -> bool:
        """Apply a stored `to_json` document for `url`; False (nothing applied) if it does not
        read as one. A verdict applies only to the same path holding the same serial."""
        source = self.sources.get(url)
        if source is None:
            return False
        try:
            document = json.loads(data)
            if not isinstance(document, dict) or document.get("url") != url:
                return False
            this_update = _parse_time(document.get("this_update"))
            next_update = _parse_time(document.get("next_update"))
            last_success = _parse_time(document.get("last_success"))
            stored = document.get("verdicts")
            if not isinstance(stored, Mapping) or next_update is None:
                return False
            serials = {t.path: t.certificate.serial_number for t in source.targets}
            restored = {}
            for path, entry in stored.items():
                if not isinstance(entry, Mapping) or serials.get(path) != entry.get("serial"):
                    continue
                status = WatchStatus(entry.get("status"))
                reason = entry.get("reason")
                restored[path] = WatchVerdict(
                    status,
                    serials[path],
                    reason if isinstance(reason, str) else None,
                    _parse_time(entry.get("revocation_time")),
                )
        except (ValueError, TypeError):
            return False
        source.verdicts.update(restored)
        source.this_update, source.next_update = this_update, next_update
        source.last_success = last_success
        if next_update > now:
            source.next_refresh = min(
                jitter(next_update, now=now, expire=None, settings=self._settings, rng=self._rng),
                next_update,
            )
        return True


def _iso(when: dt.datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def _parse_time(value: object) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("a time is an ISO 8601 string")
    when = dt.datetime.fromisoformat(value)
    if when.tzinfo is None:
        raise ValueError("a stored time must be timezone-aware")
    return when
