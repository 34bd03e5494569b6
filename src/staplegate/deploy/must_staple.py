"""Which must-staple certificates are being served without a staple (RFC 7633).

A certificate with the TLS Feature extension `status_request` tells clients to refuse it
without a stapled OCSP response, so serving it unstapled is an outage for those clients.
`unstapled` lists them from the generation and the staple table; the supervisor holds
systemd's READY=1 until the list is empty or `ocsp-update.must-staple-wait` has passed.
"""

from __future__ import annotations

from collections.abc import Mapping

from staplegate.deploy.generation import Generation
from staplegate.ocsp.certid import CertId


def unstapled(generation: Generation, table: Mapping[CertId, bytes]) -> list[str]:
    """The names of the must-staple certificates that have no staple in `table`."""
    missing = []
    for entry in generation.loaded():
        cert = entry.certificate
        if cert is None or not cert.must_staple:
            continue
        if cert.cert_id is None or cert.cert_id not in table:
            missing.append(entry.name)
    return missing
