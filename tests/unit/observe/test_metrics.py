"""The Prometheus collector against in-memory fakes of the runtime contract, parsed back with
prometheus-client's own text parser (so escaping is checked by the library that reads it)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from staplegate.certs import CertificateSource, ExtraFiles, assess_ocsp, load_certificate
from staplegate.deploy.generation import CertificateEntry
from staplegate.observe.metrics import (
    CollectedMetrics,
    StaplegateCollector,
    not_stapled_reasons,
    render,
)
from staplegate.ocsp.logline import UpdateStatus
from staplegate.ocsp.machine import State
from staplegate.runtime.contract import StatRow
from staplegate.testpki.ca import CertificateAuthority
from staplegate.updater.crl_watch import CrlTarget, CrlWatch
from staplegate.updater.results import EntrySnapshot, SharedStoreState
from staplegate.updater.timing import FetchDurations
from tests.fuzz_targets.crl_verify import CRL_URL, LEAF_SERIAL, build_crl, pki
from tests.fuzz_targets.crl_verify import NOW as FUZZ_NOW
from tests.unit.runtime.test_handlers import CERT_A, NOW, FakeBackend, FakeOcsp, _entry

ODD = '/etc/ssl/my "odd" dir/site one.pem'


@dataclass
class FakeView(FakeBackend):
    rows: list[StatRow] = field(default_factory=list)
    stores: list[CertificateEntry] = field(default_factory=list)

    def stats(self) -> Sequence[StatRow]:
        return self.rows

    def certificates(self) -> Sequence[CertificateEntry]:
        return self.stores


def samples(exposition: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(exposition.decode()):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return name, frozenset(labels.items())


def scrape(view: FakeView) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return samples(render(StaplegateCollector(view, now=lambda: NOW, started_at=1000.0)))


def served_entry(path: str) -> EntrySnapshot:
    """A certificate with a good staple served, 3 successes and two failures."""
    entry = _entry(CERT_A, path, State.WAITING)
    return dataclasses.replace(
        entry,
        paths=(path,),
        failures=2,
        failures_by_status={UpdateStatus.HTTP_ERROR: 1, UpdateStatus.CHECK_FAILURE: 1},
    )


def test_an_odd_certificate_path_round_trips_through_the_exposition() -> None:
    view = FakeView(FakeOcsp(entries=[served_entry(ODD)]))
    found = scrape(view)
    assert found[key("staplegate_ocsp_stapled", certificate=ODD)] == 1
    assert found[key("staplegate_ocsp_response_status", certificate=ODD, status="good")] == 1
    assert found[key("staplegate_ocsp_response_status", certificate=ODD, status="revoked")] == 0
    this_update = NOW - dt.timedelta(hours=1)
    assert (
        found[key("staplegate_ocsp_response_this_update_timestamp_seconds", certificate=ODD)]
        == this_update.timestamp()
    )
    responder = "http://ocsp.example.test"
    updates = "staplegate_ocsp_updates_total"
    assert found[key(updates, certificate=ODD, responder=responder, result="success")] == 3
    assert found[key(updates, certificate=ODD, responder=responder, result="http_error")] == 1
    assert found[key(updates, certificate=ODD, responder=responder, result="check_failure")] == 1
    # a failure result appears once it happened (a labelled Counter child on first use)
    assert key(updates, certificate=ODD, responder=responder, result="unknown") not in found


def test_a_newline_in_a_path_is_escaped_by_the_library() -> None:
    path = "/c/line\nbreak.pem"
    exposition = render(
        StaplegateCollector(
            FakeView(FakeOcsp(entries=[served_entry(path)])), now=lambda: NOW, started_at=0.0
        )
    )
    assert b'certificate="/c/line\\nbreak.pem"' in exposition
    assert samples(exposition)[key("staplegate_ocsp_stapled", certificate=path)] == 1


def test_frontend_backend_and_server_rows_use_haproxys_names_and_labels() -> None:
    rows = [
        StatRow(
            {
                "pxname": "www",
                "svname": "FRONTEND",
                "mode": "http",
                "scur": 2,
                "stot": 9,
                "bin": 100,
                "bout": 2000,
                "req_tot": 12,
                "hrsp_2xx": 10,
                "hrsp_5xx": 2,
                "slim": 50,
            },
            certificates=("/c/a.pem",),
            handshakes={"sent": 4, "none": 1, "not_requested": 4},
        ),
        StatRow(
            {"pxname": "web", "svname": "a", "status": "UP", "scur": 1, "stot": 7, "weight": 1}
        ),
        StatRow(
            {"pxname": "web", "svname": "BACKEND", "status": "UP", "scur": 1, "stot": 7, "act": 1}
        ),
    ]
    found = scrape(FakeView(FakeOcsp(entries=[]), rows=rows))
    assert found[key("haproxy_frontend_current_sessions", proxy="www")] == 2
    assert found[key("haproxy_frontend_sessions_total", proxy="www")] == 9
    assert found[key("haproxy_frontend_bytes_in_total", proxy="www")] == 100
    assert found[key("haproxy_frontend_bytes_out_total", proxy="www")] == 2000
    assert found[key("haproxy_frontend_http_responses_total", proxy="www", code="2xx")] == 10
    assert found[key("haproxy_frontend_http_responses_total", proxy="www", code="5xx")] == 2
    assert found[key("haproxy_frontend_http_requests_total", proxy="www")] == 12
    assert found[key("staplegate_tls_handshakes_total", frontend="www", staple="sent")] == 4
    assert found[key("staplegate_tls_handshakes_total", frontend="www", staple="none")] == 1
    assert found[key("haproxy_server_sessions_total", proxy="web", server="a")] == 7
    assert found[key("haproxy_server_status", proxy="web", server="a", state="UP")] == 1
    assert found[key("haproxy_server_status", proxy="web", server="a", state="DOWN")] == 0
    assert found[key("haproxy_backend_sessions_total", proxy="web")] == 7
    assert found[key("haproxy_process_current_connections")] == 2
    assert found[key("haproxy_process_start_time_seconds")] == 1000.0


def _store(tmp_path: Path, **options: object) -> CertificateEntry:
    ca = CertificateAuthority.init(tmp_path / "ca", now=NOW - dt.timedelta(days=1))
    issued = ca.issue("site.test", out_dir=tmp_path, **options)  # type: ignore[arg-type]
    cert = load_certificate(
        CertificateSource.from_path(issued.bundle_path), extra=ExtraFiles(), now=NOW
    )
    readiness = assess_ocsp(cert, ocsp_update=True)
    return CertificateEntry(cert.name, (), cert, None, readiness, None)


def test_not_stapled_reasons(tmp_path: Path) -> None:
    store = _store(tmp_path / "a", must_staple=True)
    snapshot = dataclasses.replace(served_entry(store.name), staple=None, failures=3)
    assert not_stapled_reasons(store, snapshot, now=NOW) == [
        "responder_failing",
        "must_staple_missing",
    ]
    assert not_stapled_reasons(store, served_entry(store.name), now=NOW) == []
    disabled = dataclasses.replace(snapshot, auto_update=False)
    assert not_stapled_reasons(store, disabled, now=NOW)[0] == "disabled"
    withdrawn = served_entry(store.name)
    assert withdrawn.staple is not None
    withdrawn = dataclasses.replace(
        withdrawn, staple=dataclasses.replace(withdrawn.staple, served=False)
    )
    assert not_stapled_reasons(store, withdrawn, now=NOW)[0] == "expired"
    later = NOW + dt.timedelta(days=400)
    assert not_stapled_reasons(store, snapshot, now=later)[0] == "expired"
    no_uri = _store(tmp_path / "b", ocsp_url=None)
    assert not_stapled_reasons(no_uri, None, now=NOW) == ["no_ocsp_uri"]
    short = _store(tmp_path / "c", ocsp_url=None, days=7)
    assert not_stapled_reasons(short, None, now=NOW) == ["short_lived"]


def test_a_certificate_without_an_ocsp_entry_is_listed_as_not_stapled(tmp_path: Path) -> None:
    store = _store(tmp_path, ocsp_url=None)
    found = scrape(FakeView(FakeOcsp(entries=[]), stores=[store]))
    assert found[key("staplegate_ocsp_stapled", certificate=store.name)] == 0
    assert (
        found[key("staplegate_ocsp_not_stapled", certificate=store.name, reason="no_ocsp_uri")] == 1
    )
    assert store.certificate is not None
    assert (
        found[key("staplegate_certificate_not_after_timestamp_seconds", certificate=store.name)]
        == store.certificate.not_after.timestamp()
    )


def test_the_crl_watch_metrics_per_url_and_per_certificate() -> None:
    world = pki()
    watch = CrlWatch(
        [CrlTarget("/c/crl-only.pem", world.leaf, world.ca)], now=FUZZ_NOW, rng=random.Random(0)
    )
    unknown = scrape(FakeView(FakeOcsp(entries=[], crl=list(watch.sources.values()))))
    assert unknown[key("staplegate_crl_fetches_total", url=CRL_URL, result="success")] == 0
    assert not any(name == "staplegate_certificate_revoked" for name, _ in unknown)
    watch.fetched(CRL_URL, build_crl(revoked=(LEAF_SERIAL,)), FUZZ_NOW)
    watch.failed(CRL_URL, "timeout", "no answer", FUZZ_NOW)
    found = scrape(FakeView(FakeOcsp(entries=[], crl=list(watch.sources.values()))))
    assert (
        found[key("staplegate_certificate_revoked", certificate="/c/crl-only.pem", source="crl")]
        == 1
    )
    assert found[key("staplegate_crl_fetches_total", url=CRL_URL, result="success")] == 1
    assert found[key("staplegate_crl_fetches_total", url=CRL_URL, result="failure")] == 1
    assert found[key("staplegate_crl_last_success_timestamp_seconds", url=CRL_URL)] == (
        FUZZ_NOW.timestamp()
    )
    assert found[key("staplegate_crl_next_update_timestamp_seconds", url=CRL_URL)] == (
        (FUZZ_NOW + dt.timedelta(days=1)).timestamp()
    )


def test_fetch_durations_are_a_histogram_per_responder() -> None:
    durations = FetchDurations()
    for seconds in (0.004, 0.02, 0.3, 16.0):
        durations.observe("http://ocsp.example.test", seconds)
    ocsp = FakeOcsp(entries=[], durations=dict(durations.snapshot()))
    found = scrape(FakeView(ocsp))
    name = "staplegate_ocsp_fetch_duration_seconds"
    responder = "http://ocsp.example.test"
    assert found[key(f"{name}_bucket", responder=responder, le="0.005")] == 1
    assert found[key(f"{name}_bucket", responder=responder, le="0.025")] == 2
    assert found[key(f"{name}_bucket", responder=responder, le="1.0")] == 3
    assert found[key(f"{name}_bucket", responder=responder, le="15.0")] == 3
    assert found[key(f"{name}_bucket", responder=responder, le="+Inf")] == 4
    assert found[key(f"{name}_count", responder=responder)] == 4
    assert found[key(f"{name}_sum", responder=responder)] == pytest.approx(16.324)


def test_collected_metrics_read_now_and_build_later() -> None:
    """The master reads on its loop (`CollectedMetrics(...)`) and renders in a thread: what
    the updater does in between does not reach the exposition being rendered."""
    ocsp = FakeOcsp(entries=[served_entry(ODD)])
    collector = StaplegateCollector(FakeView(ocsp), now=lambda: NOW, started_at=0.0)
    collected = CollectedMetrics(collector)
    ocsp.entries = []
    late = FetchDurations()
    late.observe("http://late", 0.1)
    ocsp.durations = dict(late.snapshot())
    found = samples(render(collected))
    assert found[key("staplegate_ocsp_stapled", certificate=ODD)] == 1
    assert not any(name.startswith("staplegate_ocsp_fetch") for name, _ in found)
    assert samples(render(collected)) == found  # rendering twice gives the same text
    assert key("staplegate_ocsp_stapled", certificate=ODD) not in scrape(FakeView(ocsp))


def test_the_shared_store_metrics_only_when_one_is_configured() -> None:
    absent = scrape(FakeView(FakeOcsp(entries=[])))
    assert not any(name.startswith("staplegate_shared_store") for name, _ in absent)
    url = "redis://10.0.0.5:6379/0"
    state = SharedStoreState(
        url=url, up=False, leases_held=2, fallbacks=7, outages=1, peer_staples=40, published=9
    )
    found = scrape(FakeView(FakeOcsp(entries=[], shared=state)))
    assert found[key("staplegate_shared_store_up", url=url)] == 0
    assert found[key("staplegate_shared_store_leases_held", url=url)] == 2
    assert found[key("staplegate_shared_store_fallbacks_total", url=url)] == 7
    assert found[key("staplegate_shared_store_outages_total", url=url)] == 1
    assert found[key("staplegate_shared_store_peer_staples_total", url=url)] == 40
