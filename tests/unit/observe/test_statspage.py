"""The stats page renderer: escaping, urgency order, colours, options, the CSV export."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import socket
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from staplegate.config.diagnostics import SourceLocation
from staplegate.config.model import Condition, StatsPage
from staplegate.config.parser.rules import PREDEFINED_ACLS
from staplegate.observe.metrics import CollectedMetrics, StaplegateCollector
from staplegate.observe.statspage import (
    CertRow,
    PageOptions,
    certificate_rows,
    collect_pages,
    health,
    page_options,
    render_csv,
    render_page,
    render_pages,
    sort_by_urgency,
)
from staplegate.proxy.stats_admin import BANNER_MARK
from staplegate.runtime import formats
from staplegate.runtime.contract import StatRow
from tests.unit.observe.test_metrics import FakeView, _store, served_entry
from tests.unit.runtime.test_handlers import NOW as METRICS_NOW
from tests.unit.runtime.test_handlers import FakeOcsp

NOW = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)


def cert(name: str, **changes: object) -> CertRow:
    values: dict[str, object] = {
        "names": (name,),
        "key_type": "EC256",
        "status": "good",
        "stapled": True,
        "this_update": NOW - dt.timedelta(hours=1),
        "next_update": NOW + dt.timedelta(days=3),
        "next_refresh": NOW + dt.timedelta(hours=1),
        "last_success": NOW - dt.timedelta(hours=1),
        "failures": 0,
        "reasons": (),
    }
    values.update(changes)
    return CertRow(**values)  # type: ignore[arg-type]


FRONTEND: dict[str, str | int | None] = {
    "pxname": "fe",
    "svname": "FRONTEND",
    "status": "OPEN",
    "scur": 1,
    "stot": 7,
}
SERVER: dict[str, str | int | None] = {"pxname": "be", "svname": "s1", "status": "DOWN", "stot": 3}
BACKEND: dict[str, str | int | None] = {
    "pxname": "be",
    "svname": "BACKEND",
    "status": "UP",
    "stot": 3,
}


class _Rows(HTMLParser):
    """(class, text) per <tr> of the certificates table, the way a browser reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, str]] = []
        self._in_certs = False
        self._current: list[str] | None = None
        self._class = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table":
            self._in_certs = attributes.get("class") == "certificates"
        if tag == "tr" and self._in_certs:
            self._current, self._class = [], attributes.get("class") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self._current is not None:
            self.rows.append((self._class, " ".join(self._current)))
            self._current = None
        if tag == "table":
            self._in_certs = False

    def handle_data(self, data: str) -> None:
        if self._current is not None:
            self._current.append(data)


def cert_rows(page: str) -> list[tuple[str, str]]:
    parser = _Rows()
    parser.feed(page)
    return [row for row in parser.rows if row[0]]  # the heading row has no class


def test_everything_from_a_file_or_a_peer_is_escaped() -> None:
    hostile = '/etc/<script>alert(1)</script>"&.pem'
    page = render_page(
        [{**FRONTEND, "pxname": "<b>px</b>"}],
        [cert(hostile, reasons=("<i>",), stapled=False)],
        PageOptions(node="<node>"),
        now=NOW,
    )
    assert "<script>" not in page
    assert "<b>px" not in page
    assert "<i>" not in page
    assert "<node>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&amp;.pem" in page
    assert "&lt;b&gt;px&lt;/b&gt;" in page


def test_not_stapled_and_revoked_come_first_then_failures_then_soonest_expiry() -> None:
    later = cert("later.pem", next_update=NOW + dt.timedelta(days=5))
    sooner = cert("sooner.pem", next_update=NOW + dt.timedelta(days=1))
    failing = cert("failing.pem", failures=2, next_update=NOW + dt.timedelta(days=6))
    revoked = cert("revoked.pem", status="revoked")
    missing = cert("missing.pem", stapled=False, status=None, next_update=None, reasons=("x",))
    ordered = sort_by_urgency([later, sooner, failing, revoked, missing])
    assert [r.names[0] for r in ordered] == [
        "revoked.pem", "missing.pem", "failing.pem", "sooner.pem", "later.pem",
    ]  # fmt: skip


def test_colours_green_orange_red() -> None:
    assert health(cert("a"), now=NOW) == "ok"
    late = cert(
        "a", this_update=NOW - dt.timedelta(days=3), next_update=NOW + dt.timedelta(hours=2)
    )
    assert health(late, now=NOW) == "soon"
    assert health(cert("a", next_update=NOW + dt.timedelta(hours=2)), now=NOW) == "ok"
    assert health(cert("a", failures=1), now=NOW) == "soon"
    assert health(cert("a", status="revoked"), now=NOW) == "failing"
    assert health(cert("a", stapled=False, reasons=("responder_failing",)), now=NOW) == "failing"
    page = render_page(
        [], [cert("bad.pem", stapled=False, reasons=("no_issuer",))], PageOptions(), now=NOW
    )
    assert re.search(r"tr\.failing td\{background:#ff9090\}", page)
    [(css, text)] = cert_rows(page)
    assert css == "failing"
    assert "bad.pem" in text
    assert "no_issuer" in text
    assert "not stapled" in text


def test_the_certificate_row_shows_its_times_key_and_failures() -> None:
    row = cert("site.pem", failures=3, names=("site.pem", "other.pem"))
    [(_, text)] = cert_rows(render_page([], [row], PageOptions(), now=NOW))
    for expected in ("site.pem", "other.pem", "EC256", "good", "2026-12-10 12:00:00 UTC", " 3 "):
        assert expected in f" {text} "


def test_refresh_version_node_and_scope() -> None:
    plain = render_page([FRONTEND, SERVER, BACKEND], [], PageOptions(), now=NOW)
    assert 'http-equiv="refresh"' not in plain
    assert "staplegate " in plain.split("</title>")[0]
    assert "fe" in plain
    assert "s1" in plain
    tuned = render_page(
        [FRONTEND, SERVER, BACKEND],
        [],
        PageOptions(
            refresh_s=10, hide_version=True, node="lb1", description="edge <pair>", scope=("be",)
        ),
        now=NOW,
    )
    assert '<meta http-equiv="refresh" content="10">' in tuned
    assert "staplegate " not in tuned.split("</title>")[0]
    assert "Node: lb1" in tuned
    assert "Description: edge &lt;pair&gt;" in tuned
    assert '<th colspan="16">be</th>' in tuned
    assert '<th colspan="16">fe</th>' not in tuned
    assert '<tr class="down"><td class="name">s1</td>' in tuned


def test_the_csv_export_is_show_stat() -> None:
    assert render_csv([FRONTEND, BACKEND]) == formats.stat_csv([FRONTEND, BACKEND])
    assert render_csv([FRONTEND]).startswith("# pxname,svname,")


def test_rows_from_the_runtime_view(tmp_path: Path) -> None:
    served = _store(tmp_path / "a")
    failing = _store(tmp_path / "b")
    no_uri = _store(tmp_path / "c", ocsp_url=None)
    snapshots = [
        served_entry(served.name),
        dataclasses.replace(served_entry(failing.name), staple=None, failures=4),
    ]
    rows = certificate_rows([served, failing, no_uri], snapshots, now=METRICS_NOW)
    by_name = {row.names[0]: row for row in rows}
    assert by_name[served.name].stapled
    assert by_name[served.name].status == "good"
    assert by_name[served.name].key_type is not None
    assert by_name[failing.name].reasons == ("responder_failing",)
    assert by_name[no_uri.name].reasons == ("no_ocsp_uri",)
    assert rows[-1].names == (served.name,)  # the only healthy one is last


def test_page_options_from_the_stats_lines() -> None:
    where = SourceLocation("t.cfg", 1)
    options = page_options(StatsPage(where, scope=(".", "web"), node="", refresh_s=3), "stats")
    assert options.scope == ("stats", "web")  # `stats scope .`: the section itself
    assert options.node == socket.gethostname()  # bare `stats show-node`
    assert options.refresh_s == 3
    assert page_options(StatsPage(where), "stats").node is None


def test_pages_read_on_the_loop_are_built_and_rendered_later(tmp_path: Path) -> None:
    served = _store(tmp_path / "a")
    no_uri = _store(tmp_path / "c", ocsp_url=None)
    ocsp = FakeOcsp(entries=[served_entry(served.name)])
    view = FakeView(ocsp, rows=[StatRow(FRONTEND)], stores=[served, no_uri])
    where = SourceLocation("t.cfg", 1)
    admin = Condition(False, (PREDEFINED_ACLS["TRUE"],))
    pages = {
        "one": StatsPage(where),
        "two": StatsPage(where, hide_version=True),
        "three": StatsPage(where, admin=admin),
    }
    data = collect_pages(view, pages, now=METRICS_NOW, uptime_s=5)
    ocsp.entries = []  # the updater moves on; what was read stays
    rendered = render_pages(data)
    assert set(rendered) == {"one", "two", "three"}
    for page, csv, _ in rendered.values():
        assert page.count(b'<tr class="failing"><td class="name">') == 1  # no OCSP URI
        assert page.count(b'<tr class="soon"><td class="name">') == 1  # 2 failures
        assert csv.startswith(b"# pxname,svname,")
    # only a page with `stats admin` has an admin variant
    assert rendered["one"][2] == rendered["two"][2] == b""
    assert rendered["three"][2].count(b'<tr class="failing"><td class="name">') == 1


def test_the_admin_variant_has_haproxys_form() -> None:
    """A checkbox per server, the actions and Apply per backend with servers; the
    read-only page has none of it; both have the place of the status banner."""
    rows = [FRONTEND, SERVER, {**SERVER, "svname": "s2", "status": "MAINT"}, BACKEND]
    plain = render_page(rows, [], PageOptions(), now=NOW)
    admin = render_page(rows, [], PageOptions(), now=NOW, admin=True)
    assert "<form" not in plain
    assert 'type="checkbox"' not in plain
    assert plain.count(BANNER_MARK.decode()) == admin.count(BANNER_MARK.decode()) == 1
    assert admin.count('<form method="post">') == 1  # the frontend's table has no servers
    assert '<input class="be-checkbox" type="checkbox" name="s" value="s1">' in admin
    assert '<input class="be-checkbox" type="checkbox" name="s" value="s2">' in admin
    assert '<option value="maint">Set state to MAINT</option>' in admin
    assert '<option value="ready">Set state to READY</option>' in admin
    assert '<option value="drain">Set state to DRAIN</option>' in admin
    assert '<input type="hidden" name="b" value="be">' in admin
    assert '<input type="submit" value="Apply"></form>' in admin
    # a server in maintenance has HAProxy's colour on both pages
    for page in (plain, admin):
        row = page[page.rindex("<tr", 0, page.index(">s2<")) : page.index(">s2<")]
        assert 'class="maint"' in row


def test_pages_reuse_the_snapshot_the_metrics_just_took(tmp_path: Path) -> None:
    served = _store(tmp_path / "a")
    ocsp = FakeOcsp(entries=[])  # asking the updater again would find nothing
    view = FakeView(ocsp, rows=[StatRow(FRONTEND)], stores=[served])
    collected = CollectedMetrics(StaplegateCollector(view, now=lambda: METRICS_NOW, started_at=0))
    assert collected.snapshots == []
    shared = [served_entry(served.name)]
    pages = {"one": StatsPage(SourceLocation("t.cfg", 1))}
    data = collect_pages(view, pages, now=METRICS_NOW, uptime_s=5, snapshots=shared)
    page, _, _ = render_pages(data)["one"]
    assert page.count(b'<tr class="soon"><td class="name">') == 1  # stapled, 2 failures
    assert CollectedMetrics(_Nothing()).snapshots is None  # another collector


class _Nothing(Collector):
    def collect(self) -> Iterator[Metric]:
        return iter(())


def test_snapshot_rows_give_a_sidecar_its_certificates_table() -> None:
    """The sidecar has no loaded certificates: rows come from the updater's snapshot, the
    failing one first with its reason, an expired one as expired."""
    from staplegate.observe.statspage import snapshot_rows
    from staplegate.ocsp.machine import State
    from tests.unit.runtime.test_handlers import CERT_A, CERT_B, _entry

    good = _entry(CERT_A, "/c/a.pem", State.WAITING)
    failing = _entry(CERT_B, "/c/b.pem", State.WAITING)
    rows = snapshot_rows(
        [good, failing],
        {"/c/a.pem": "ecdsa", "/c/b.pem": "rsa"},
        {"/c/a.pem": METRICS_NOW + dt.timedelta(days=30)},
        now=METRICS_NOW,
    )
    assert [(r.names, r.key_type, r.stapled, r.reasons) for r in rows] == [
        (("/c/b.pem",), "rsa", False, ("responder_failing",)),
        (("/c/a.pem",), "ecdsa", True, ()),
    ]
    expired = snapshot_rows(
        [good], {}, {"/c/a.pem": METRICS_NOW - dt.timedelta(days=1)}, now=METRICS_NOW
    )
    assert expired[0].reasons == ("expired",)
