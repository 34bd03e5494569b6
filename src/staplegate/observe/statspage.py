"""HAProxy's stats page, with a certificates table: pure functions, rows in, text out.

The proxy table shows what `show stat` has (HAProxy's page and `show stat` read the same
counters); the certificates table adds each certificate's staple health, most urgent first:
not stapled or revoked, then failing, then the soonest nextUpdate. Every value is
HTML-escaped (certificate paths and names come from files and the network). The `;csv`
export is `show stat`'s CSV (`runtime.formats.stat_csv`).

The master renders each `stats`-enabled frontend's page (`collect_pages` on its loop,
`render_pages` in a thread) and pushes it to the workers, which answer from it
(`proxy.http_rules.StatsService`), exactly like `/metrics`.
"""

from __future__ import annotations

import datetime as dt
import html
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from staplegate import __version__
from staplegate.config.model import StatsPage
from staplegate.deploy.generation import CertificateEntry
from staplegate.observe.metrics import not_stapled_reasons
from staplegate.ocsp.verify import CertStatus
from staplegate.proxy.stats_admin import ACTION_LABELS, BANNER_MARK
from staplegate.runtime import formats
from staplegate.runtime.contract import ProcessView
from staplegate.updater.results import EntrySnapshot

#: a staple with less than this share of its validity (thisUpdate..nextUpdate) left is shown
#: orange ("soon"): a refresh that should have happened by then has not
SOON_SHARE = 0.25

#: the proxy table's columns: (heading, `show stat` field)
PROXY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Name", "svname"),
    ("Status", "status"),
    ("Cur sessions", "scur"),
    ("Max sessions", "smax"),
    ("Limit", "slim"),
    ("Total sessions", "stot"),
    ("Bytes in", "bin"),
    ("Bytes out", "bout"),
    ("Req errors", "ereq"),
    ("Conn errors", "econ"),
    ("Resp errors", "eresp"),
    ("1xx", "hrsp_1xx"),
    ("2xx", "hrsp_2xx"),
    ("3xx", "hrsp_3xx"),
    ("4xx", "hrsp_4xx"),
    ("5xx", "hrsp_5xx"),
)

#: with `stats show-legends`: what HAProxy's page shows in its legends
LEGEND_COLUMNS: tuple[tuple[str, str], ...] = (("Address", "addr"), ("Algorithm", "algo"))

Row = Mapping[str, str | int | None]


@dataclass(frozen=True, slots=True)
class CertRow:
    """One certificate's line in the certificates table."""

    names: tuple[str, ...]  # the configured paths holding it
    key_type: str | None
    status: str | None  # good / revoked / unknown of the held staple; None: no staple
    stapled: bool
    this_update: dt.datetime | None
    next_update: dt.datetime | None
    next_refresh: dt.datetime | None
    last_success: dt.datetime | None
    failures: int
    reasons: tuple[str, ...]  # why it is not stapled (observe.metrics.not_stapled_reasons)


@dataclass(frozen=True, slots=True)
class PageOptions:
    """What a frontend's `stats` lines change on its page (HAProxy's names)."""

    refresh_s: int | None = None  # `stats refresh`: a meta refresh
    hide_version: bool = False  # `stats hide-version`
    show_legends: bool = False  # `stats show-legends`: server addresses and algorithms
    node: str | None = None  # `stats show-node [name]`
    description: str | None = None  # `stats show-desc [text]`
    scope: tuple[str, ...] = ()  # `stats scope`: only these proxies (empty: all)


def certificate_rows(
    entries: Sequence[CertificateEntry], snapshots: Sequence[EntrySnapshot], *, now: dt.datetime
) -> list[CertRow]:
    """The certificates table's rows from what the runtime API reads, in urgency order."""
    by_path = {path: snap for snap in snapshots for path in snap.paths}
    rows: list[CertRow] = []
    for entry in entries:
        cert = entry.certificate
        if cert is None:
            continue
        snap = by_path.get(entry.name)
        staple = snap.staple if snap is not None else None
        rows.append(
            CertRow(
                names=snap.paths if snap is not None else (entry.name,),
                key_type=cert.key_type.haproxy_name,
                status=_status_name(staple.status) if staple is not None else None,
                stapled=staple is not None and staple.served,
                this_update=staple.this_update if staple is not None else None,
                next_update=staple.next_update if staple is not None else None,
                next_refresh=snap.next_attempt if snap is not None else None,
                last_success=snap.last_success if snap is not None else None,
                failures=snap.failures if snap is not None else 0,
                reasons=tuple(not_stapled_reasons(entry, snap, now=now)),
            )
        )
    # one row per OCSP entry: a certificate named by several files is listed once
    unique = {row.names: row for row in rows}
    return sort_by_urgency(list(unique.values()))


def snapshot_rows(
    snapshots: Sequence[EntrySnapshot],
    key_types: Mapping[str, str],
    not_after: Mapping[str, dt.datetime],
    *,
    now: dt.datetime,
) -> list[CertRow]:
    """The certificates table of a process without loaded certificates (the sidecar): rows
    from the updater's snapshot alone, key types and expiry by path; in urgency order."""
    rows = []
    for snap in snapshots:
        staple = snap.staple
        stapled = staple is not None and staple.served
        reasons: tuple[str, ...] = ()
        expiry = not_after.get(snap.path)
        if expiry is not None and expiry <= now:
            reasons = ("expired",)
        elif not stapled and snap.failures:
            reasons = ("responder_failing",)
        rows.append(
            CertRow(
                names=snap.paths,
                key_type=key_types.get(snap.path),
                status=_status_name(staple.status) if staple is not None else None,
                stapled=stapled,
                this_update=staple.this_update if staple is not None else None,
                next_update=staple.next_update if staple is not None else None,
                next_refresh=snap.next_attempt,
                last_success=snap.last_success,
                failures=snap.failures,
                reasons=reasons,
            )
        )
    return sort_by_urgency(rows)


def _status_name(status: CertStatus) -> str:
    return status.name.lower()


def health(row: CertRow, *, now: dt.datetime) -> str:
    """The row's colour class: `failing` (red), `soon` (orange) or `ok` (green)."""
    if not row.stapled or row.status == "revoked" or row.reasons:
        return "failing"
    if row.failures or row.status != "good":
        return "soon"
    if row.next_update is None or row.this_update is None:
        return "ok"
    left = row.next_update - now
    return "soon" if left <= (row.next_update - row.this_update) * SOON_SHARE else "ok"


def sort_by_urgency(rows: Sequence[CertRow]) -> list[CertRow]:
    """Not stapled or revoked first, then failing refreshes, then the soonest nextUpdate."""
    far = dt.datetime.max.replace(tzinfo=dt.UTC)

    def key(row: CertRow) -> tuple[int, int, dt.datetime, tuple[str, ...]]:
        bad = not row.stapled or row.status == "revoked"
        return (0 if bad else 1, 0 if row.failures else 1, row.next_update or far, row.names)

    return sorted(rows, key=key)


@dataclass(frozen=True, slots=True)
class PageData:
    """What one frontend's page shows, read from the master's state (cheap; on its loop).

    The certificates stay as read (configured entries and the updater's frozen snapshot):
    turning 10,000 of them into sorted rows is left to `render_pages`, in the thread."""

    options: PageOptions
    stat_rows: tuple[Row, ...]
    entries: Sequence[CertificateEntry]
    snapshots: Sequence[EntrySnapshot]
    now: dt.datetime
    uptime_s: int
    admin: bool = False  # `stats admin`: render the admin variant too


def page_options(page: StatsPage, proxy: str) -> PageOptions:
    """The `stats` lines of `proxy` as the renderer's options (`stats scope .` is itself)."""
    node = page.node if page.node != "" else socket.gethostname()  # bare `stats show-node`
    return PageOptions(
        refresh_s=page.refresh_s,
        hide_version=page.hide_version,
        show_legends=page.show_legends,
        node=node,
        # a bare `stats show-desc` shows the global `description`, which staplegate does not
        # keep (it changes nothing else): nothing then
        description=page.description or None,
        scope=tuple(proxy if name == "." else name for name in page.scope),
    )


def collect_pages(
    view: ProcessView,
    pages: Mapping[str, StatsPage],
    *,
    now: dt.datetime,
    uptime_s: int,
    snapshots: Sequence[EntrySnapshot] | None = None,
) -> dict[str, PageData]:
    """Each stats frontend's data: the `show stat` rows (its scope, legends only when
    `stats show-legends`) and the certificates, read once for all of them. `snapshots`: the
    updater's snapshot when the caller just took one (the metrics'), else it is taken here
    (10,000 certificates: ~0.15 s of the master's loop)."""
    stat_rows = [row.fields for row in view.stats()]
    entries = view.certificates()
    if snapshots is None:
        snapshots = view.ocsp_updater().snapshot()
    found = {}
    for name, page in pages.items():
        options = page_options(page, name)
        rows = []
        for fields in stat_rows:
            if options.scope and fields.get("pxname") not in options.scope:
                continue
            if not options.show_legends:
                fields = {k: v for k, v in fields.items() if k not in formats.LEGEND_FIELDS}
            rows.append(fields)
        admin = page.admin is not None
        found[name] = PageData(options, tuple(rows), entries, snapshots, now, uptime_s, admin)
    return found


def render_pages(data: Mapping[str, PageData]) -> dict[str, tuple[bytes, bytes, bytes]]:
    """Each frontend's page, `;csv` export and, with `stats admin`, the page's admin variant
    (else b""), encoded (run in a thread by the master); the certificates table is built
    once for all the pages read together."""
    tables: dict[tuple[int, int], list[CertRow]] = {}
    pages = {}
    for name, d in data.items():
        key = (id(d.entries), id(d.snapshots))
        certs = tables.get(key)
        if certs is None:
            certs = tables[key] = certificate_rows(d.entries, d.snapshots, now=d.now)
        page = render_page(d.stat_rows, certs, d.options, now=d.now, uptime_s=d.uptime_s)
        admin = ""
        if d.admin:
            admin = render_page(
                d.stat_rows, certs, d.options, now=d.now, uptime_s=d.uptime_s, admin=True
            )
        pages[name] = (page.encode(), render_csv(d.stat_rows).encode(), admin.encode())
    return pages


def render_csv(stat_rows: Sequence[Row]) -> str:
    """The `;csv` export: exactly `show stat`'s answer."""
    return formats.stat_csv(stat_rows)


_STYLE = """
body{font-family:Arial,Helvetica,sans-serif;font-size:12px;background:#fff}
table{border-collapse:collapse;margin-bottom:1em}
th,td{border:1px solid #999;padding:2px 4px;text-align:right}
td.name,th.name{text-align:left}
tr.px th{background:#b0b0ff;text-align:left}
tr.frontend td{background:#f0f0f0}
tr.backend td{background:#e8e8d0}
tr.up td,tr.ok td{background:#c0ffc0}
tr.down td,tr.failing td{background:#ff9090}
tr.soon td{background:#ffd020}
tr.maint td{background:#c07820}
tr.drain td{background:#20a0ff}
div.banner{padding:2px 4px;margin-bottom:1em}
div.active_up{background:#c0ffc0}
div.active_going_down{background:#ffffa0}
div.active_down{background:#ff9090}
div.active_no_check{background:#e0e0e0}
a.lfsb{color:#000;text-decoration:none}
"""


def render_page(
    stat_rows: Sequence[Row],
    certs: Sequence[CertRow],
    options: PageOptions,
    *,
    now: dt.datetime,
    uptime_s: int = 0,
    admin: bool = False,
) -> str:
    """The whole HTML page (UTF-8 text); every dynamic value is escaped. `admin`: the
    `stats admin` variant (HAProxy's form: a checkbox per server, the actions per backend).
    The worker puts the status banner of `;st=<code>` at `stats_admin.BANNER_MARK`."""
    e = html.escape
    parts = ['<!DOCTYPE html>\n<html><head><meta charset="utf-8">']
    if options.refresh_s:
        parts.append(f'<meta http-equiv="refresh" content="{int(options.refresh_s)}">')
    title = "Statistics Report" + ("" if options.hide_version else f" for staplegate {__version__}")
    parts.append(f"<title>{e(title)}</title><style>{_STYLE}</style></head><body>")
    parts.append(f"<h1>{e(title)}</h1>")
    if options.node is not None:
        parts.append(f'<p class="node">Node: {e(options.node)}</p>')
    if options.description is not None:
        parts.append(f'<p class="desc">Description: {e(options.description)}</p>')
    parts.append(
        f"<p>Generated {e(formats.log_date(now))}; uptime {e(formats.uptime_text(uptime_s))}"
    )
    if options.refresh_s:
        parts.append(f"; refreshes every {int(options.refresh_s)}s")
    parts.append("</p>")
    parts.append(BANNER_MARK.decode())
    parts.append(_certificates_table(certs, now=now))
    parts.append(_proxy_tables(stat_rows, options, admin=admin))
    parts.append("</body></html>\n")
    return "".join(parts)


def _cell(value: object, *, name: bool = False) -> str:
    text = "" if value is None else str(value)
    css = ' class="name"' if name else ""
    return f"<td{css}>{html.escape(text)}</td>"


def _when(value: dt.datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _certificates_table(certs: Sequence[CertRow], *, now: dt.datetime) -> str:
    head = (
        "Certificate", "Key", "OCSP status", "thisUpdate", "nextUpdate", "Next refresh",
        "Last success", "Failures", "Not stapled because",
    )  # fmt: skip
    out = ['<h2>Certificates</h2><table class="certificates"><tr>']
    out.extend(f'<th class="name">{html.escape(h)}</th>' for h in head)
    out.append("</tr>")
    for row in certs:
        status = row.status if row.stapled else f"{row.status or 'none'} (not stapled)"
        out.append(f'<tr class="{health(row, now=now)}">')
        out.append(_cell("\n".join(row.names), name=True).replace("\n", "<br>"))
        out.extend(
            _cell(value)
            for value in (
                row.key_type,
                status,
                _when(row.this_update),
                _when(row.next_update),
                _when(row.next_refresh),
                _when(row.last_success),
                row.failures,
                ", ".join(row.reasons),
            )
        )
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _proxy_tables(stat_rows: Sequence[Row], options: PageOptions, *, admin: bool = False) -> str:
    by_proxy: dict[str, list[Row]] = {}
    for row in stat_rows:
        proxy = str(row.get("pxname") or "")
        if options.scope and proxy not in options.scope:
            continue
        by_proxy.setdefault(proxy, []).append(row)
    columns = PROXY_COLUMNS + (LEGEND_COLUMNS if options.show_legends else ())
    out = []
    for proxy, rows in by_proxy.items():
        px = html.escape(proxy)
        # HAProxy's form: on a backend with servers, when the request may act on them
        form = admin and any(str(r.get("svname")) not in ("FRONTEND", "BACKEND") for r in rows)
        if form:
            out.append('<form method="post">')
        span = len(columns) + (1 if form else 0)
        out.append(f'<table class="proxy"><tr class="px"><th colspan="{span}">')
        out.append(f"{px}</th></tr><tr>")
        if form:
            out.append(
                '<th><input type="checkbox" title="all servers" onclick="for (const c of '
                f"document.getElementsByClassName('{px}-checkbox')) c.checked = this.checked"
                '"></th>'
            )
        out.extend(f"<th>{html.escape(heading)}</th>" for heading, _ in columns)
        out.append("</tr>")
        for row in rows:
            out.append(f'<tr class="{_proxy_row_class(row)}">')
            if form:
                name = str(row.get("svname") or "")
                if name in ("FRONTEND", "BACKEND"):
                    out.append("<td></td>")
                else:
                    out.append(
                        f'<td><input class="{px}-checkbox" type="checkbox" name="s" '
                        f'value="{html.escape(name)}"></td>'
                    )
            for _, field in columns:
                out.append(_cell(row.get(field), name=field == "svname"))
            out.append("</tr>")
        out.append("</table>")
        if form:
            options_html = "".join(
                f'<option value="{value}">{html.escape(label)}</option>'
                for value, label in ACTION_LABELS.items()
            )
            out.append(
                "Choose the action to perform on the checked servers : "
                f'<select name="action"><option value=""></option>{options_html}</select>'
                f'<input type="hidden" name="b" value="{px}">'
                '&nbsp;<input type="submit" value="Apply"></form>'
            )
    return "".join(out)


def _proxy_row_class(row: Row) -> str:
    name = str(row.get("svname") or "")
    if name in ("FRONTEND", "BACKEND"):
        return name.lower()
    status = str(row.get("status") or "")
    if status.startswith("MAINT"):
        return "maint"
    if status.startswith("DRAIN"):
        return "drain"
    return "up" if status.startswith("UP") or status == "no check" else "down"
