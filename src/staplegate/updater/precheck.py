"""Verify the stored staples ahead of time, in a forked process, while the master builds its
TLS contexts.

Theory of operation. Verifying one stored staple costs ~0.1 ms, most of it the response's
signature. At 50,000 certificates that was ~6 s on the master's one core, after the workers
had started serving without any staple (docs/performance.md, "Scale"). But everything the
check needs exists well before that: the certificates and their issuers once the
configuration is loaded (`deploy.generation.load_generation`), the stored staples once the
state directory is read (store/preload.py). Building the TLS contexts comes in between and
takes as long again (~13 s at 50,000), on the master's core. So `app.run` forks a child
there (`process.forked.ForkedCall`) that runs `precheck`: `verify_response` on every
candidate of every entry, at the moment of the fork. The staples that pass come back keyed
by their DER; the updater starts each machine with them as `VerifiedStaple`s, and the
machine re-runs only the checks that depend on the time (`ocsp.verify.still_valid_at`),
verifying in full any that fails them. A candidate that failed here is simply not sent
back: the machine verifies it itself at start, and logs why it is refused with the clock of
that moment. Nothing in the result is taken on trust that the master's own code did not
compute: the child is a fork of the master, running `verify_response` on the master's data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from staplegate.ocsp.certid import CertId
from staplegate.ocsp.verify import DEFAULT_SKEW, VerificationError, VerifiedStaple, verify_response
from staplegate.updater.driver import UpdaterEntry

#: Below this many stored staples, forking a child costs more than checking them in place.
PRECHECK_MIN = 2000


def precheck(
    entries: Sequence[UpdaterEntry],
    stored: Mapping[CertId, bytes],
    *,
    now: dt.datetime,
    skew: dt.timedelta = DEFAULT_SKEW,
) -> dict[bytes, VerifiedStaple]:
    """Every candidate (sidecar `.ocsp` and stored staple) of every entry that verifies for
    its certificate at `now`, keyed by its DER."""
    verified: dict[bytes, VerifiedStaple] = {}
    for entry in entries:
        candidates = [entry.sidecar_ocsp] if entry.sidecar_ocsp else []
        staple = stored.get(CertId.for_certificate(entry.certificate, entry.issuer))
        if staple is not None:
            candidates.append(staple)
        for der in candidates:
            if der in verified:
                continue
            try:
                verified[der] = verify_response(
                    der, certificate=entry.certificate, issuer=entry.issuer, now=now, skew=skew
                )
            except VerificationError:
                continue  # the machine verifies it again at start and logs why
    return verified
