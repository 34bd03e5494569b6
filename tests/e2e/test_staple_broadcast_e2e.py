"""Many certificates through a running `staplegate --workers 2`: every one stapled by both
workers, from coalesced deltas (one copy of each staple per worker, not one table per staple).

The master and each worker log every staple message at debug level; the workers' lines say
how many staples they hold, which is the readiness signal (no sleeping). To prove a given
worker serves every staple, the other one is stopped (SIGSTOP): the listening socket is
shared, so only the running worker accepts.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.x509 import ocsp

from staplegate.testpki.ca import IssuedCertificate
from staplegate.testpki.pytest_plugin import Pki

from .harness import free_port, pyopenssl_staple, staplegate

pytestmark = [pytest.mark.slow]

COUNT = 300

CONFIG = """\
global
    log stdout format raw local0 debug
    ocsp-update.mode on

defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend www
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    default_backend web

backend web
    server web1 127.0.0.1:9
"""

MASTER_SENT = re.compile(
    r"staples sent to worker #\d+ \((\d+)\): (?:whole table|(\d+) changed, (\d+) withdrawn)"
    r", \d+ bytes; table (\d+) staples"
)


@contextmanager
def stopped(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def unstapled(port: int, leaves: list[IssuedCertificate]) -> list[str]:
    """Names whose handshake carried no good staple for that very certificate."""
    missing = []
    for leaf in leaves:
        staple = pyopenssl_staple(port, leaf.name)
        if not staple:
            missing.append(f"{leaf.name}: no staple")
            continue
        response = ocsp.load_der_ocsp_response(staple)
        if (
            response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL
            or response.serial_number != leaf.serial
            or response.certificate_status is not ocsp.OCSPCertStatus.GOOD
        ):
            missing.append(f"{leaf.name}: wrong staple")
    return missing


def test_hundreds_of_certificates_are_stapled_by_both_workers_from_coalesced_deltas(
    tmp_path: Path, pki: Pki
) -> None:
    leaves = [pki.issue(f"host{i:03d}.example.test") for i in range(COUNT)]
    crt_list = tmp_path / "crt-list.txt"
    crt_list.write_text(
        "".join(f"{leaf.bundle_path} {leaf.name}\n" for leaf in leaves), encoding="utf-8"
    )
    port = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.format(port=port, crt_list=crt_list), encoding="utf-8")

    with staplegate(config, tmp_path / "state", workers=2) as proc:
        lines = proc.wait_for(rf"worker \d+: staple table.*: {COUNT} staples$", count=2, timeout=60)
        workers = proc.worker_pids()
        assert len(workers) == 2
        assert {int(line.split()[1].rstrip(":")) for line in lines} == set(workers)

        for serving, idle in ((workers[0], workers[1]), (workers[1], workers[0])):
            with stopped(idle):
                assert unstapled(port, leaves) == [], f"worker {serving}"
        assert proc.stop() == 0

    # Each worker got the whole table once when its pipe opened (empty, or holding the first
    # few staples when fetches beat the fork), then deltas that add up to exactly one copy of
    # each other staple (no refresh is due yet). Logging never blocks the server: on a
    # starved machine a debug line can be dropped (and the drop is reported at exit), and
    # then the sum can only fall short, never exceed.
    dropped = any("log line(s) dropped" in line for line in proc.lines)
    sent = [MASTER_SENT.search(line) for line in proc.lines]
    per_worker: dict[int, list[re.Match[str]]] = {pid: [] for pid in workers}
    for match in sent:
        if match is not None:
            per_worker[int(match[1])].append(match)
    for pid, messages in per_worker.items():
        deltas = [m for m in messages if m[2] is not None]
        wholes = [m for m in messages if m[2] is None]  # the whole table, at pipe opening
        assert len(wholes) == 1 or (dropped and not wholes), (pid, len(wholes))
        total = sum(int(m[4]) for m in wholes) + sum(int(m[2]) for m in deltas)
        assert total == COUNT or (dropped and total < COUNT), (pid, total, dropped)
        assert sum(int(m[3]) for m in deltas) == 0, pid
        # Before: one whole table per staple, COUNT messages per worker. Now deltas spaced by
        # an interval that grows with the table (15 ms at 300 staples: ~110 messages here,
        # more on a loaded machine; tests/integration/process/test_master.py pins the exact
        # coalescing), so some message must carry several staples.
        assert len(deltas) < COUNT, (pid, len(deltas))
        assert max(int(m[2]) for m in deltas) > 1, pid
