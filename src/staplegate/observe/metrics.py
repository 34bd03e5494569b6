"""Prometheus metrics: HAProxy's exporter names for what staplegate shares with HAProxy, and
every certificate's staple health.

`StaplegateCollector` is a prometheus-client custom collector that reads only the runtime
API's Protocols (`runtime.contract.ProcessView` and its `OcspService`): the master already
holds every value (the workers' traffic counters arrive through `process.traffic`), so a
scrape is a read of the master's state, never a query to a worker. `render` is the text a
scrape answers (prometheus-client's `generate_latest`: the library writes the format and
escapes label values, so a certificate path with a space, a quote or a newline is safe).

Names, types and labels follow HAProxy's promex (addons/promex in HAProxy's tree): `proxy`
labels frontends and backends, `proxy` + `server` label servers, `code` the response class;
staplegate's own metrics are `staplegate_*` (docs/reference/metrics.md lists them all).
Timestamps are Unix-seconds gauges; only counters end in `_total`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from staplegate import __version__
from staplegate.certs import LoadedCertificate, OcspDisposition
from staplegate.certs.readiness import is_short_lived
from staplegate.deploy.generation import CertificateEntry
from staplegate.ocsp.logline import UpdateStatus
from staplegate.ocsp.verify import CertStatus
from staplegate.runtime.contract import ProcessView, StatRow
from staplegate.updater.crl_watch import CrlSource, WatchStatus
from staplegate.updater.results import EntrySnapshot, SharedStoreState
from staplegate.updater.timing import DurationHistogram

#: `staplegate_ocsp_updates_total{result}`: one value per `<OCSP-UPDATE>` status code
UPDATE_RESULTS: Mapping[UpdateStatus, str] = {
    UpdateStatus.UNKNOWN: "unknown",
    UpdateStatus.SUCCESS: "success",
    UpdateStatus.HTTP_ERROR: "http_error",
    UpdateStatus.MISSING_CONTENT_TYPE: "missing_header",
    UpdateStatus.CHECK_FAILURE: "check_failure",
    UpdateStatus.INSERTION_ERROR: "insertion_error",
}
RESPONSE_STATUSES = ("good", "revoked", "unknown")
_RESPONSE_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")


def not_stapled_reasons(
    entry: CertificateEntry, snapshot: EntrySnapshot | None, *, now: dt.datetime
) -> list[str]:
    """Why a certificate is not stapled now (empty: it is, or its first fetch is running).

    `must_staple_missing` comes with the reason that explains it, so an alert can select the
    certificates whose clients refuse the connection.
    """
    cert = entry.certificate
    if cert is None:
        return []
    if snapshot is not None and snapshot.staple is not None and snapshot.staple.served:
        return []
    reasons = _first_reason(cert, entry, snapshot, now=now)
    if cert.must_staple:
        reasons.append("must_staple_missing")
    return reasons


def _first_reason(
    cert: LoadedCertificate,
    entry: CertificateEntry,
    snapshot: EntrySnapshot | None,
    *,
    now: dt.datetime,
) -> list[str]:
    if cert.not_after <= now:
        return ["expired"]
    if cert.ocsp_uri is None:
        return ["short_lived" if is_short_lived(cert) else "no_ocsp_uri"]
    if cert.issuer is None:
        return ["no_issuer"]
    readiness = entry.readiness
    if snapshot is None or (
        readiness is not None and readiness.disposition is not OcspDisposition.ENTRY
    ):
        return ["disabled"]
    if snapshot.staple is not None:
        return ["expired"]  # held but withdrawn: past its nextUpdate (minus the margin)
    if not snapshot.auto_update:
        return ["disabled"]
    if snapshot.failures:
        return ["responder_failing"]
    return []  # the first fetch is still running


@dataclass(frozen=True, slots=True)
class MetricsState:
    """What one scrape shows (`StaplegateCollector.read`)."""

    info: Mapping[str, str | int]
    rows: Sequence[StatRow]
    entries: Sequence[CertificateEntry]
    snapshots: Sequence[EntrySnapshot]
    durations: Mapping[str, DurationHistogram]
    crl: tuple[Metric, ...]
    now: dt.datetime
    shared: SharedStoreState | None = None
    """The fleet's Redis store (`ocsp-update.shared-store`), None when not used."""


class StaplegateCollector(Collector):
    """Every metric, computed from `view` at each scrape (see the module docstring)."""

    def __init__(
        self,
        view: ProcessView,
        *,
        now: Callable[[], dt.datetime],
        started_at: float,
    ) -> None:
        self._view = view
        self._now = now
        self._started_at = started_at

    def collect(self) -> Iterator[Metric]:
        return self.families(self.read())

    def read(self) -> MetricsState:
        """Everything a scrape shows, read from the master (call on its loop): fresh values
        and frozen snapshots, so `families` can run in a thread while the state moves on.

        The CRL watch's families are built here: its sources are live objects."""
        view = self._view
        updater = view.ocsp_updater()
        return MetricsState(
            info=view.info(),
            rows=view.stats(),
            entries=view.certificates(),
            snapshots=updater.snapshot(),
            durations=updater.fetch_durations(),
            crl=tuple(_crl_watch(updater.crl_sources())),
            now=self._now(),
            shared=updater.shared_store(),
        )

    def families(self, state: MetricsState) -> Iterator[Metric]:
        """The metric families of `state` (pure: safe in a thread)."""
        rows = state.rows
        yield from self._process(state.info, rows)
        yield from _frontends([r for r in rows if r.fields.get("svname") == "FRONTEND"])
        yield from _backends([r for r in rows if r.fields.get("svname") == "BACKEND"])
        yield from _servers(
            [r for r in rows if r.fields.get("svname") not in ("FRONTEND", "BACKEND")]
        )
        yield from _certificates(state.entries, state.snapshots, now=state.now)
        yield from state.crl
        yield _fetch_durations(state.durations)
        yield from _shared_store(state.shared)

    def _process(self, info: Mapping[str, str | int], rows: Sequence[StatRow]) -> Iterator[Metric]:
        def gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"haproxy_process_{name}", text, value=value)

        build = GaugeMetricFamily("haproxy_process_build_info", "Build info", labels=["version"])
        build.add_metric([__version__], 1)
        yield build
        yield gauge("nbthread", "Number of started threads (workers).", _int(info, "Nbthread"))
        yield gauge("nbproc", "Number of started processes.", _int(info, "Nbproc"))
        yield gauge("start_time_seconds", "Start time in seconds.", self._started_at)
        yield gauge(
            "uptime_seconds",
            "How long ago this process was started (seconds).",
            _int(info, "Uptime_sec"),
        )
        yield gauge("stopping", "Non-zero means stopping in progress.", _int(info, "Stopping"))
        yield gauge(
            "current_connections",
            "Number of active sessions.",
            sum(_int(r.fields, "scur") for r in rows if r.fields.get("svname") == "FRONTEND"),
        )
        yield CounterMetricFamily(
            "haproxy_process_dropped_logs",
            "Total number of dropped logs.",
            value=_int(info, "DroppedLogs"),
        )


def _int(fields: Mapping[str, str | int | None], name: str) -> int:
    value = fields.get(name)
    return value if isinstance(value, int) else 0


def _frontends(rows: Sequence[StatRow]) -> Iterator[Metric]:
    proxy = ["proxy"]
    current = GaugeMetricFamily(
        "haproxy_frontend_current_sessions", "Number of current sessions.", labels=proxy
    )
    limit = GaugeMetricFamily(
        "haproxy_frontend_limit_sessions", "Configured session limit.", labels=proxy
    )
    total = CounterMetricFamily(
        "haproxy_frontend_sessions", "Total number of sessions.", labels=proxy
    )
    bytes_in = CounterMetricFamily(
        "haproxy_frontend_bytes_in", "Current total of incoming bytes.", labels=proxy
    )
    bytes_out = CounterMetricFamily(
        "haproxy_frontend_bytes_out", "Current total of outgoing bytes.", labels=proxy
    )
    requests = CounterMetricFamily(
        "haproxy_frontend_http_requests", "Total number of HTTP requests received.", labels=proxy
    )
    responses = CounterMetricFamily(
        "haproxy_frontend_http_responses",
        "Total number of HTTP responses.",
        labels=["proxy", "code"],
    )
    handshakes = CounterMetricFamily(
        "staplegate_tls_handshakes",
        "TLS handshakes by stapling outcome: sent (a staple was sent), none (the client asked, "
        "none was available), not_requested (the client did not ask).",
        labels=["frontend", "staple"],
    )
    for row in rows:
        fields = row.fields
        name = str(fields["pxname"])
        current.add_metric([name], _int(fields, "scur"))
        limit.add_metric([name], _int(fields, "slim"))
        total.add_metric([name], _int(fields, "stot"))
        bytes_in.add_metric([name], _int(fields, "bin"))
        bytes_out.add_metric([name], _int(fields, "bout"))
        if fields.get("mode") == "http":
            requests.add_metric([name], _int(fields, "req_tot"))
            for code in _RESPONSE_CLASSES:
                responses.add_metric([name, code], _int(fields, f"hrsp_{code}"))
        if row.certificates:
            for outcome in ("sent", "none", "not_requested"):
                handshakes.add_metric([name, outcome], row.handshakes.get(outcome, 0))
    yield from (current, limit, total, bytes_in, bytes_out, requests, responses, handshakes)


def _backends(rows: Sequence[StatRow]) -> Iterator[Metric]:
    proxy = ["proxy"]
    current = GaugeMetricFamily(
        "haproxy_backend_current_sessions", "Number of current sessions.", labels=proxy
    )
    total = CounterMetricFamily(
        "haproxy_backend_sessions", "Total number of sessions.", labels=proxy
    )
    status = GaugeMetricFamily(
        "haproxy_backend_status", "Current status of the service.", labels=["proxy", "state"]
    )
    active = GaugeMetricFamily(
        "haproxy_backend_active_servers", "Current number of active servers.", labels=proxy
    )
    for row in rows:
        fields = row.fields
        name = str(fields["pxname"])
        current.add_metric([name], _int(fields, "scur"))
        total.add_metric([name], _int(fields, "stot"))
        active.add_metric([name], _int(fields, "act"))
        for state in ("UP", "DOWN"):
            status.add_metric([name, state], int(fields.get("status") == state))
    yield from (current, total, status, active)


_SERVER_STATES = ("DOWN", "UP", "MAINT", "DRAIN", "NOLB")


def _servers(rows: Sequence[StatRow]) -> Iterator[Metric]:
    labels = ["proxy", "server"]
    current = GaugeMetricFamily(
        "haproxy_server_current_sessions", "Number of current sessions.", labels=labels
    )
    total = CounterMetricFamily(
        "haproxy_server_sessions", "Total number of sessions.", labels=labels
    )
    status = GaugeMetricFamily(
        "haproxy_server_status", "Current status of the service.", labels=[*labels, "state"]
    )
    weight = GaugeMetricFamily("haproxy_server_weight", "Server's effective weight.", labels=labels)
    for row in rows:
        fields = row.fields
        key = [str(fields["pxname"]), str(fields["svname"])]
        current.add_metric(key, _int(fields, "scur"))
        total.add_metric(key, _int(fields, "stot"))
        weight.add_metric(key, _int(fields, "weight"))
        for state in _SERVER_STATES:
            status.add_metric([*key, state], int(fields.get("status") == state))
    yield from (current, total, status, weight)


def _certificates(
    entries: Sequence[CertificateEntry], snapshots: Sequence[EntrySnapshot], *, now: dt.datetime
) -> Iterator[Metric]:
    cert = ["certificate"]
    stapled = GaugeMetricFamily(
        "staplegate_ocsp_stapled",
        "1 while a valid staple is served for the certificate.",
        labels=cert,
    )
    status = GaugeMetricFamily(
        "staplegate_ocsp_response_status",
        "1 for the held response's certificate status, 0 for the others.",
        labels=["certificate", "status"],
    )
    this_update = GaugeMetricFamily(
        "staplegate_ocsp_response_this_update_timestamp_seconds",
        "thisUpdate of the held response.",
        labels=cert,
    )
    next_update = GaugeMetricFamily(
        "staplegate_ocsp_response_next_update_timestamp_seconds",
        "nextUpdate of the held response.",
        labels=cert,
    )
    produced_at = GaugeMetricFamily(
        "staplegate_ocsp_response_produced_at_timestamp_seconds",
        "producedAt of the held response.",
        labels=cert,
    )
    next_refresh = GaugeMetricFamily(
        "staplegate_ocsp_next_refresh_timestamp_seconds",
        "When the next OCSP update is scheduled.",
        labels=cert,
    )
    last_success = GaugeMetricFamily(
        "staplegate_ocsp_last_success_timestamp_seconds",
        "When the last OCSP update succeeded.",
        labels=cert,
    )
    updates = CounterMetricFamily(
        "staplegate_ocsp_updates",
        "OCSP update attempts by <OCSP-UPDATE> status.",
        labels=["certificate", "responder", "result"],
    )
    not_after = GaugeMetricFamily(
        "staplegate_certificate_not_after_timestamp_seconds",
        "notAfter of the certificate.",
        labels=cert,
    )
    not_stapled = GaugeMetricFamily(
        "staplegate_ocsp_not_stapled",
        "1 with the reason a certificate is not stapled (absent while it is stapled).",
        labels=["certificate", "reason"],
    )
    by_path = {path: snapshot for snapshot in snapshots for path in snapshot.paths}
    for snapshot in snapshots:
        name = [snapshot.path]
        staple = snapshot.staple
        stapled.add_metric(name, int(staple is not None and staple.served))
        if staple is not None:
            for value in RESPONSE_STATUSES:
                status.add_metric([snapshot.path, value], int(_status(staple.status) == value))
            this_update.add_metric(name, staple.this_update.timestamp())
            next_update.add_metric(name, staple.next_update.timestamp())
            produced_at.add_metric(name, staple.produced_at.timestamp())
        if snapshot.next_attempt is not None:
            next_refresh.add_metric(name, snapshot.next_attempt.timestamp())
        if snapshot.last_success is not None:
            last_success.add_metric(name, snapshot.last_success.timestamp())
        # `success` always, a failure result once it happened (as a labelled Counter's child
        # appears on first use): 10,000 certificates x 6 results would be most of a scrape
        responder = snapshot.uri or ""
        updates.add_metric([snapshot.path, responder, "success"], snapshot.successes)
        for code, count in snapshot.failures_by_status.items():
            updates.add_metric([snapshot.path, responder, UPDATE_RESULTS[code]], count)
    for entry in entries:
        certificate = entry.certificate
        if certificate is None:
            continue
        held = by_path.get(entry.name)
        not_after.add_metric([entry.name], certificate.not_after.timestamp())
        if held is None:  # no OCSP entry: never stapled
            stapled.add_metric([entry.name], 0)
        for reason in not_stapled_reasons(entry, held, now=now):
            not_stapled.add_metric([entry.name, reason], 1)
    yield from (
        stapled,
        status,
        this_update,
        next_update,
        produced_at,
        next_refresh,
        last_success,
        updates,
        not_after,
        not_stapled,
    )


def _crl_watch(sources: Sequence[CrlSource]) -> Iterator[Metric]:
    """The CRL watch (`show ssl crl-watch`): per CRL URL its times and fetches, per watched
    certificate whether its CRL lists it."""
    url = ["url"]
    next_update = GaugeMetricFamily(
        "staplegate_crl_next_update_timestamp_seconds",
        "nextUpdate of the last verified CRL.",
        labels=url,
    )
    last_success = GaugeMetricFamily(
        "staplegate_crl_last_success_timestamp_seconds",
        "When the CRL was last fetched and verified.",
        labels=url,
    )
    fetches = CounterMetricFamily(
        "staplegate_crl_fetches",
        "CRL fetches by result (success: fetched and verified).",
        labels=["url", "result"],
    )
    revoked = GaugeMetricFamily(
        "staplegate_certificate_revoked",
        "1 when the certificate is revoked, by the source that says so; 0 when it is good.",
        labels=["certificate", "source"],
    )
    for source in sources:
        if source.next_update is not None:
            next_update.add_metric([source.url], source.next_update.timestamp())
        if source.last_success is not None:
            last_success.add_metric([source.url], source.last_success.timestamp())
        fetches.add_metric([source.url, "success"], source.successes)
        fetches.add_metric([source.url, "failure"], source.failures)
        for target in source.targets:
            status = source.verdict(target.path).status
            if status is not WatchStatus.UNKNOWN:
                revoked.add_metric([target.path, "crl"], int(status is WatchStatus.REVOKED))
    yield from (next_update, last_success, fetches, revoked)


def _shared_store(state: SharedStoreState | None) -> Iterator[Metric]:
    """The fleet's Redis store (`ocsp-update.shared-store`); nothing when it is not used."""
    if state is None:
        return
    labels = ["url"]
    up = GaugeMetricFamily(
        "staplegate_shared_store_up", "1 while the shared store answers.", labels=labels
    )
    up.add_metric([state.url], int(state.up))
    leases = GaugeMetricFamily(
        "staplegate_shared_store_leases_held",
        "Single-flight leases this instance holds now (its fetches in flight).",
        labels=labels,
    )
    leases.add_metric([state.url], state.leases_held)
    fallbacks = CounterMetricFamily(
        "staplegate_shared_store_fallbacks",
        "Fetches made without the fleet: Redis down, or a lease holder's staple late.",
        labels=labels,
    )
    fallbacks.add_metric([state.url], state.fallbacks)
    outages = CounterMetricFamily(
        "staplegate_shared_store_outages",
        "Times the shared store became unavailable.",
        labels=labels,
    )
    outages.add_metric([state.url], state.outages)
    peer = CounterMetricFamily(
        "staplegate_shared_store_peer_staples",
        "Fetches answered by another instance's staple, without a request of ours.",
        labels=labels,
    )
    peer.add_metric([state.url], state.peer_staples)
    yield from (up, leases, fallbacks, outages, peer)


def _fetch_durations(histograms: Mapping[str, DurationHistogram]) -> Metric:
    """`staplegate_ocsp_fetch_duration_seconds{responder}`: each OCSP fetch's own time, from
    the request to its answer or failure (a timeout counts at the timeout)."""
    family = HistogramMetricFamily(
        "staplegate_ocsp_fetch_duration_seconds",
        "How long OCSP fetches took, per responder (request to answer or failure).",
        labels=["responder"],
    )
    for responder, histogram in histograms.items():
        family.add_metric(
            [responder],
            buckets=[
                (_le(bound), count)
                for bound, count in zip(histogram.bounds, histogram.cumulative, strict=True)
            ],
            sum_value=histogram.sum_s,
        )
    return family


def _le(bound: float) -> str:
    """A bucket's `le` label as prometheus-client writes it (`0.5`, `1.0`, `+Inf`)."""
    return "+Inf" if bound == math.inf else repr(bound)


def _status(status: CertStatus) -> str:
    return status.value if status.value in RESPONSE_STATUSES else "unknown"


class CollectedMetrics(Collector):
    """Metrics read now and built later: construct it on the master's loop (a
    `StaplegateCollector` only reads its state there, `read`), then `render` it in a thread,
    where the families are built and formatted while the state goes on changing. With 10,000
    certificates building the families is most of the reading's old cost (docs/performance.md).
    Any other collector is collected whole at construction."""

    def __init__(self, collector: Collector) -> None:
        self._state: MetricsState | None = None
        self._families: list[Metric] = []
        if isinstance(collector, StaplegateCollector):
            self._collector = collector
            self._state = collector.read()
        else:
            self._families = list(collector.collect())

    def collect(self) -> Iterator[Metric]:
        if self._state is not None:
            return self._collector.families(self._state)
        return iter(self._families)

    @property
    def snapshots(self) -> Sequence[EntrySnapshot] | None:
        """The updater's snapshot read with the metrics (None for another collector): the
        stats page of the same moment reuses it rather than taking a second one."""
        return self._state.snapshots if self._state is not None else None


def render(collector: Collector) -> bytes:
    """The exposition a scrape answers (prometheus-client's text format)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)
