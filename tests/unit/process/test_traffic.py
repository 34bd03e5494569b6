"""The master's traffic totals: live reports summed, retired workers absorbed, so a reload
never makes a counter go backwards."""

from __future__ import annotations

from staplegate.process.traffic import TrafficTotals, WorkerReport, frontend_counters
from staplegate.proxy.records import FrontendStats, HttpStats


def report(sessions: int, current: int, *, server: int = 0) -> WorkerReport:
    return WorkerReport(
        {"www": {"scur": current, "stot": sessions, "bin": sessions * 10}},
        {("web", "a"): {"scur": 0, "stot": server}},
    )


def test_live_workers_are_summed_and_gauges_are_not_kept_after_they_leave() -> None:
    totals = TrafficTotals()
    totals.update(1, report(5, 2, server=4))
    totals.update(2, report(3, 1, server=1))
    assert totals.frontends()["www"] == {"scur": 3, "stot": 8, "bin": 80}
    assert totals.servers()[("web", "a")]["stot"] == 5
    totals.update(1, report(6, 0, server=5))  # a newer report replaces the older
    assert totals.frontends()["www"]["stot"] == 9
    totals.retire(1)
    assert totals.frontends()["www"] == {"scur": 1, "stot": 9, "bin": 90}
    assert totals.live_workers == 1


def test_a_simulated_reload_never_makes_a_counter_go_backwards() -> None:
    totals = TrafficTotals()
    seen: list[int] = []

    def observe() -> None:
        seen.append(totals.frontends().get("www", {}).get("stot", 0))

    # generation 1: workers 10 and 11 serve
    totals.update(10, report(100, 4))
    totals.update(11, report(50, 2))
    observe()
    # reload: new workers 20 and 21 start from zero while the old ones drain
    totals.update(20, report(0, 0))
    totals.update(21, report(0, 0))
    observe()
    totals.update(10, report(103, 1))  # old workers finish their connections
    totals.update(20, report(7, 7))
    observe()
    totals.retire(10)  # its last report becomes part of the totals
    observe()
    totals.retire(11)
    totals.retire(11)  # a second retirement (EOF and reap) changes nothing
    observe()
    totals.update(21, report(2, 2))
    observe()
    assert seen == sorted(seen)
    assert seen[-1] == 103 + 50 + 7 + 2
    assert totals.frontends()["www"]["scur"] == 9  # only the live workers' sessions


def test_a_frontends_counters_come_from_its_stats() -> None:
    stats = FrontendStats()
    stats.accepted, stats.active, stats.handshakes = 10, 2, 9
    stats.bytes_in, stats.bytes_out = 5, 6
    stats.staples.stapled, stats.staples.not_stapled = 3, 1
    http = HttpStats()
    http.requests = 4
    http.responses_by_class["2xx"] = 3
    http.responses_by_class["other"] = 1
    counters = frontend_counters(stats, http)
    assert counters["stot"] == 10
    assert counters["scur"] == 2
    assert (counters["staple_sent"], counters["staple_none"]) == (3, 1)
    assert counters["staple_not_requested"] == 5
    assert (counters["hrsp_2xx"], counters["hrsp_other"], counters["hrsp_4xx"]) == (3, 1, 0)
    assert "hrsp_2xx" not in frontend_counters(stats, None)
