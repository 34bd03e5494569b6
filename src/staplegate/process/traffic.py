"""Traffic counters: what each worker reports, and the master's totals that never go back.

A worker reports its own cumulative counters (since it started) at least once a second
(`process.ipc.encode_report`), plus a last report as it exits. The master keeps the latest
report of every live worker and, per frontend, backend and server *name*, the totals of the
workers that are gone (`TrafficTotals.retire`, when a worker's report pipe closes). A total
is then "retired + sum of live reports": a reload (old workers draining and leaving, new ones
starting from zero) never makes a counter go backwards; only a restart of the master resets
them, as in HAProxy. Gauges (current sessions) are summed over live workers only.

Counter names are HAProxy's `show stat` fields (`stot`, `bin`, `bout`, `req_tot`,
`hrsp_1xx`..`hrsp_other`), plus `staple_sent`, `staple_none`, `staple_not_requested`
(handshakes by stapling outcome, staplegate's own). `scur` is the one gauge.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol, TypeVar

#: counters that are gauges (summed over live workers only, never absorbed on retirement)
GAUGES: Final = frozenset({"scur"})
#: handshakes by stapling outcome, as the staplegate_tls_handshakes_total{staple} label says
STAPLE_OUTCOMES: Final = {
    "sent": "staple_sent",
    "none": "staple_none",
    "not_requested": "staple_not_requested",
}
RESPONSE_CLASSES: Final = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")

Counters = dict[str, int]
_K = TypeVar("_K")
ServerKey = tuple[str, str]  # (backend, server)


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """One worker's cumulative counters since it started (pickled over its report pipe)."""

    frontends: Mapping[str, Counters] = field(default_factory=dict)
    servers: Mapping[ServerKey, Counters] = field(default_factory=dict)


class _StapleStats(Protocol):
    stapled: int

    @property
    def failed(self) -> int: ...


class _FrontendStats(Protocol):
    accepted: int
    active: int
    handshakes: int
    bytes_in: int
    bytes_out: int

    @property
    def staples(self) -> _StapleStats: ...


class _HttpStats(Protocol):
    requests: int

    @property
    def responses_by_class(self) -> Mapping[str, int]: ...


def frontend_counters(stats: _FrontendStats, http: _HttpStats | None) -> Counters:
    """One frontend's report entry from its `proxy.records.FrontendStats` (and HttpStats)."""
    staples = stats.staples
    requested = staples.stapled + staples.failed
    counters = {
        "scur": stats.active,
        "stot": stats.accepted,
        "bin": stats.bytes_in,
        "bout": stats.bytes_out,
        "staple_sent": staples.stapled,
        "staple_none": staples.failed,
        "staple_not_requested": max(0, stats.handshakes - requested),
    }
    if http is not None:
        counters["req_tot"] = http.requests
        for name in RESPONSE_CLASSES:
            counters[f"hrsp_{name}"] = http.responses_by_class.get(name, 0)
    return counters


def _add(into: dict[str, int], counters: Mapping[str, int], *, gauges: bool) -> None:
    for name, value in counters.items():
        if gauges or name not in GAUGES:
            into[name] = into.get(name, 0) + value


class TrafficTotals:
    """The master's aggregate of every worker's reports (see the module docstring)."""

    def __init__(self) -> None:
        self._live: dict[int, WorkerReport] = {}
        self._retired_frontends: dict[str, Counters] = collections.defaultdict(dict)
        self._retired_servers: dict[ServerKey, Counters] = collections.defaultdict(dict)

    def update(self, pid: int, report: WorkerReport) -> None:
        """Worker `pid`'s latest report replaces its previous one."""
        self._live[pid] = report

    def retire(self, pid: int) -> None:
        """Worker `pid` is gone: its last counters become part of the retired totals."""
        report = self._live.pop(pid, None)
        if report is None:
            return
        for name, counters in report.frontends.items():
            _add(self._retired_frontends[name], counters, gauges=False)
        for key, counters in report.servers.items():
            _add(self._retired_servers[key], counters, gauges=False)

    @property
    def live_workers(self) -> int:
        return len(self._live)

    def frontends(self) -> dict[str, Counters]:
        """Per frontend name: retired totals + every live worker's counters."""
        return self._totals(
            self._retired_frontends, (report.frontends for report in self._live.values())
        )

    def servers(self) -> dict[ServerKey, Counters]:
        """Per (backend, server): retired totals + every live worker's counters."""
        return self._totals(
            self._retired_servers, (report.servers for report in self._live.values())
        )

    @staticmethod
    def _totals(
        retired: Mapping[_K, Counters], live: Iterable[Mapping[_K, Counters]]
    ) -> dict[_K, Counters]:
        totals: dict[_K, Counters] = {key: dict(counters) for key, counters in retired.items()}
        for reports in live:
            for key, counters in reports.items():
                _add(totals.setdefault(key, {}), counters, gauges=True)
        return totals
