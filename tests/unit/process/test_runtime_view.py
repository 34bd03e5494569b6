"""MasterRuntime: the runtime API's view of a real master (its plan, pools and generation).

The master is built from a real configuration and certificate, with no sockets and no
workers: what the socket's `show servers`, `show stat`, `show info` and `set server` read and
change is the master's own state, so no process is needed to check it.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from staplegate.clock import SystemClock
from staplegate.deploy.generation import load_generation
from staplegate.deploy.plan import build_plan
from staplegate.fetch.client import FetchSettings
from staplegate.ocsp.schedule import UpdateSettings
from staplegate.process.master import Deployment, Master, ReloadResult
from staplegate.process.runtime_view import MasterRuntime
from staplegate.process.traffic import WorkerReport
from staplegate.proxy.backends import AdminState
from staplegate.runtime.contract import UnknownServer
from staplegate.testpki.pytest_plugin import Pki
from staplegate.updater.service import OcspUpdater

CONFIG = """\
defaults
    timeout connect 1s
    timeout client 1s
    timeout server 1s
frontend www
    mode http
    bind 127.0.0.1:9 ssl crt {crt}
    default_backend web
backend web
    mode http
    balance leastconn
    server web1 127.0.0.1:9
    server web2 127.0.0.1:10 check
"""


async def _no_reload() -> ReloadResult:
    raise AssertionError("not reloaded in these tests")


def make_runtime(tmp_path: Path, pki: Pki) -> MasterRuntime:
    leaf = pki.issue("www.example.test")
    config = tmp_path / "haproxy.cfg"
    config.write_text(CONFIG.format(crt=leaf.bundle_path), encoding="utf-8")
    clock = SystemClock()
    generation = load_generation([str(config)], now=clock.now(), err=io.StringIO())
    assert generation is not None
    assert generation.ok
    plan, _ = build_plan(generation, number=1)
    assert plan is not None
    master = Master(
        config_paths=(str(config),),
        current=Deployment(1, generation, plan, sockets={}),
        state_dir=tmp_path / "state",
        worker_count=2,
        clock=clock,
    )
    updater = OcspUpdater(
        [],
        update_settings=UpdateSettings(),
        fetch_settings=FetchSettings(),
        on_staples=lambda table: None,
    )
    return MasterRuntime(master, updater, _no_reload)


def test_show_stat_rows_carry_the_plans_mode_and_algorithm(tmp_path: Path, pki: Pki) -> None:
    runtime = make_runtime(tmp_path, pki)
    rows = {(row.fields["pxname"], row.fields["svname"]): row for row in runtime.stats()}
    assert list(rows) == [("www", "FRONTEND"), ("web", "web1"), ("web", "web2"), ("web", "BACKEND")]
    assert rows["www", "FRONTEND"].fields["mode"] == "http"
    assert len(rows["www", "FRONTEND"].certificates) == 1
    backend = rows["web", "BACKEND"].fields
    assert (backend["mode"], backend["algo"]) == ("http", "leastconn")
    assert rows["web", "web1"].fields["addr"] == "127.0.0.1:9"
    assert rows["web", "web1"].fields["check_status"] is None  # no `check`
    assert rows["web", "web2"].fields["check_status"] in ("L4OK", "L4CON")


def test_set_server_state_changes_the_pool_that_show_servers_reads(
    tmp_path: Path, pki: Pki
) -> None:
    runtime = make_runtime(tmp_path, pki)
    assert [(v.name, v.server_id, v.admin) for v in runtime.servers()] == [
        ("web1", 1, AdminState.READY),
        ("web2", 2, AdminState.READY),
    ]
    runtime.set_server_state("web", "web1", AdminState.MAINT)
    assert runtime.servers()[0].admin is AdminState.MAINT
    web1 = next(row for row in runtime.stats() if row.fields["svname"] == "web1")
    assert web1.fields["status"] == "MAINT"
    with pytest.raises(UnknownServer, match="No such backend"):
        runtime.set_server_state("nope", "web1", AdminState.READY)
    with pytest.raises(UnknownServer, match="No such server"):
        runtime.set_server_state("web", "web9", AdminState.READY)


def test_show_info_and_the_certificates_come_from_the_master(tmp_path: Path, pki: Pki) -> None:
    runtime = make_runtime(tmp_path, pki)
    info = runtime.info()
    assert info["Name"] == "staplegate"
    assert info["Nbthread"] == 2
    assert info["Stopping"] == 0
    assert runtime.last_reload() is None
    assert [entry.certificate is not None for entry in runtime.certificates()] == [True]
    assert runtime.crt_lists() == ()


def test_show_stat_fills_traffic_fields_from_the_workers_reports(tmp_path: Path, pki: Pki) -> None:
    runtime = make_runtime(tmp_path, pki)
    traffic = runtime._master.traffic
    traffic.update(
        100,
        WorkerReport(
            {
                "www": {
                    "scur": 1,
                    "stot": 4,
                    "bin": 10,
                    "bout": 20,
                    "hrsp_2xx": 3,
                    "staple_sent": 2,
                    "staple_none": 1,
                    "staple_not_requested": 1,
                }
            },
            {("web", "web1"): {"scur": 1, "stot": 3}},
        ),
    )
    traffic.update(101, WorkerReport({"www": {"scur": 0, "stot": 2}}, {}))
    rows = {(row.fields["pxname"], row.fields["svname"]): row for row in runtime.stats()}
    frontend = rows["www", "FRONTEND"]
    assert (frontend.fields["scur"], frontend.fields["stot"]) == (1, 6)
    assert (frontend.fields["bin"], frontend.fields["bout"]) == (10, 20)
    assert (frontend.fields["hrsp_2xx"], frontend.fields["hrsp_5xx"]) == (3, 0)
    assert frontend.handshakes == {"sent": 2, "none": 1, "not_requested": 1}
    assert rows["web", "web1"].fields["stot"] == 3
    assert rows["web", "BACKEND"].fields["stot"] == 3
    traffic.retire(100)  # a reload's old worker leaves: totals stay, its session is gone
    rows = {(r.fields["pxname"], r.fields["svname"]): r for r in runtime.stats()}
    assert (rows["www", "FRONTEND"].fields["scur"], rows["www", "FRONTEND"].fields["stot"]) == (
        0,
        6,
    )
