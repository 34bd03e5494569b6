"""The CRL watch core: one fetch per URL, verdicts per certificate, schedule, persistence."""

from __future__ import annotations

import datetime as dt
import json
import random

from cryptography import x509

from staplegate.ocsp.schedule import UpdateSettings
from staplegate.updater.crl_watch import (
    LOG_TAG,
    RESULT_CHECK_FAILURE,
    CrlTarget,
    CrlWatch,
    WatchStatus,
    state_file_name,
)
from tests.fuzz_targets.crl_verify import CRL_URL, LEAF_SERIAL, NOW, build_crl, pki

NO_JITTER = UpdateSettings(jitter=0.0)


def _second_leaf(serial: int) -> x509.Certificate:
    """Another certificate of the fuzz CA with the same distribution point."""
    world = pki()
    return (
        x509.CertificateBuilder()
        .subject_name(world.leaf.subject)
        .issuer_name(world.ca.subject)
        .public_key(world.leaf.public_key())
        .serial_number(serial)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=60))
        .add_extension(
            world.leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value,
            critical=False,
        )
        .sign(world.ca_key, None)
    )


def _watch(*, settings: UpdateSettings = NO_JITTER, second_serial: int = 0x999) -> CrlWatch:
    world = pki()
    targets = [
        CrlTarget("/a.pem", world.leaf, world.ca),
        CrlTarget("/b.pem", _second_leaf(second_serial), world.ca),
        CrlTarget("/self.pem", world.ca, world.ca),  # no distribution point: not watched
    ]
    return CrlWatch(targets, now=NOW, settings=settings, rng=random.Random(1))


def test_certificates_sharing_a_url_share_one_source_due_at_once() -> None:
    watch = _watch()
    assert list(watch.sources) == [CRL_URL]
    assert [t.path for t in watch.sources[CRL_URL].targets] == ["/a.pem", "/b.pem"]
    assert watch.due(NOW) == [CRL_URL]
    assert watch.sources[CRL_URL].verdict("/a.pem").status is WatchStatus.UNKNOWN


def test_one_crl_judges_each_certificate_and_alerts_once_per_revocation() -> None:
    watch = _watch(second_serial=0x999)
    logs = watch.fetched(CRL_URL, build_crl(revoked=(0x999,)), NOW)
    source = watch.sources[CRL_URL]
    assert source.verdict("/a.pem").status is WatchStatus.GOOD
    revoked = source.verdict("/b.pem")
    assert revoked.status is WatchStatus.REVOKED
    assert revoked.reason == "keyCompromise"
    assert logs[0].message == f'{LOG_TAG} {CRL_URL} ok "2 certificate(s), 1 revoked" 0 1'
    alerts = [log for log in logs if log.alert]
    assert len(alerts) == 1
    assert "/b.pem is REVOKED" in alerts[0].message
    again = watch.fetched(CRL_URL, build_crl(revoked=(0x999,)), NOW + dt.timedelta(hours=1))
    assert not any(log.alert for log in again)


def test_refresh_is_at_next_update_with_jitter_never_later() -> None:
    next_update = NOW + dt.timedelta(days=1)
    exact = _watch()
    exact.fetched(CRL_URL, build_crl(next_update=next_update), NOW)
    assert exact.sources[CRL_URL].next_refresh == next_update
    assert exact.due(next_update - dt.timedelta(seconds=1)) == []
    assert exact.due(next_update) == [CRL_URL]
    for seed in range(20):
        jittered = CrlWatch(
            exact.sources[CRL_URL].targets,
            now=NOW,
            settings=UpdateSettings(),
            rng=random.Random(seed),
        )
        jittered.fetched(CRL_URL, build_crl(next_update=next_update), NOW)
        when = jittered.sources[CRL_URL].next_refresh
        assert when is not None
        assert next_update - dt.timedelta(days=1) * 0.1 <= when <= next_update


def test_a_next_update_a_few_seconds_away_is_not_pushed_back_by_mindelay() -> None:
    watch = _watch(settings=UpdateSettings())
    soon = NOW + dt.timedelta(seconds=5)
    watch.fetched(CRL_URL, build_crl(next_update=soon), NOW)
    when = watch.sources[CRL_URL].next_refresh
    assert when is not None
    assert NOW < when <= soon


def test_failures_back_off_like_haproxy_and_keep_the_last_verdict() -> None:
    watch = _watch(second_serial=0x999)
    watch.fetched(CRL_URL, build_crl(revoked=(0x999,)), NOW)
    logs = watch.failed(CRL_URL, "connect-failed", "connection refused", NOW)
    source = watch.sources[CRL_URL]
    assert logs[0].message == f'{LOG_TAG} {CRL_URL} connect-failed "connection refused" 1 1'
    assert source.next_refresh == NOW + dt.timedelta(seconds=120)
    watch.failed(CRL_URL, "timeout", "no answer", NOW)
    assert source.next_refresh == NOW + dt.timedelta(seconds=240)
    assert source.verdict("/b.pem").status is WatchStatus.REVOKED
    assert source.verdict("/a.pem").status is WatchStatus.GOOD
    assert source.last_success == NOW
    assert source.failures == 2
    watch.fetched(CRL_URL, build_crl(revoked=(0x999,)), NOW)
    assert source.consecutive_failures == 0


def test_a_crl_that_fails_verification_never_revokes_and_keeps_the_last_verdict() -> None:
    watch = _watch()
    watch.fetched(CRL_URL, build_crl(revoked=()), NOW)
    forged = build_crl(revoked=(LEAF_SERIAL,), other_ca=True)
    logs = watch.fetched(CRL_URL, forged, NOW)
    assert logs[0].message.startswith(f"{LOG_TAG} {CRL_URL} {RESULT_CHECK_FAILURE} ")
    assert not any(log.alert for log in logs)
    assert watch.sources[CRL_URL].verdict("/a.pem").status is WatchStatus.GOOD
    garbage = watch.fetched(CRL_URL, b"\x30\x03garbage", NOW)
    assert RESULT_CHECK_FAILURE in garbage[0].message
    assert watch.sources[CRL_URL].next_refresh == NOW + dt.timedelta(seconds=240)


def test_verdicts_survive_a_restart_for_the_same_path_and_serial_only() -> None:
    before = _watch(second_serial=0x999)
    before.fetched(CRL_URL, build_crl(revoked=(0x999,)), NOW)
    stored = before.to_json(CRL_URL)
    after = _watch(second_serial=0x999)
    later = NOW + dt.timedelta(hours=1)
    assert after.restore(CRL_URL, stored, later)
    source = after.sources[CRL_URL]
    assert source.verdict("/b.pem").status is WatchStatus.REVOKED
    assert source.next_refresh == NOW + dt.timedelta(days=1)
    assert after.due(later) == []
    renewed = _watch(second_serial=0x1000)  # /b.pem now holds another certificate
    assert renewed.restore(CRL_URL, stored, later)
    assert renewed.sources[CRL_URL].verdict("/b.pem").status is WatchStatus.UNKNOWN


def test_a_damaged_state_file_is_ignored() -> None:
    watch = _watch()
    good = json.loads(_fetched_json())
    for data in (
        b"",
        b"{",
        b"[]",
        json.dumps({**good, "url": "http://elsewhere/"}).encode(),
        json.dumps({**good, "next_update": 7}).encode(),
        json.dumps({**good, "next_update": "2026-03-02T00:00:00"}).encode(),
        json.dumps(
            {**good, "verdicts": {"/a.pem": {"status": "bad", "serial": LEAF_SERIAL}}}
        ).encode(),
    ):
        assert not watch.restore(CRL_URL, data, NOW), data
    assert watch.sources[CRL_URL].verdict("/a.pem").status is WatchStatus.UNKNOWN
    assert watch.due(NOW) == [CRL_URL]


def _fetched_json() -> bytes:
    watch = _watch()
    watch.fetched(CRL_URL, build_crl(), NOW)
    return watch.to_json(CRL_URL)


def test_state_file_names_are_per_url_and_safe() -> None:
    name = state_file_name(CRL_URL)
    assert name != state_file_name(CRL_URL + "x")
    assert name.startswith("crl-")
    assert name.endswith(".json")
    assert "/" not in name


def test_a_crl_past_its_next_update_but_within_the_skew_is_asked_again_a_minute_later() -> None:
    watch = _watch()
    late = NOW + dt.timedelta(minutes=2)  # nextUpdate passed; current within the 300 s skew
    logs = watch.fetched(CRL_URL, build_crl(), late + dt.timedelta(days=1))
    assert " ok " in logs[0].message
    assert watch.sources[CRL_URL].next_refresh == late + dt.timedelta(days=1, seconds=60)


def test_fetch_order_puts_the_distribution_point_that_answered_last_first() -> None:
    from staplegate.updater.crl_watch import CrlSource

    source = CrlSource("http://a/crl", [], mirrors=["http://b/crl", "http://c/crl"])
    assert source.fetch_order() == ["http://a/crl", "http://b/crl", "http://c/crl"]
    source.answering = "http://c/crl"
    assert source.fetch_order() == ["http://c/crl", "http://a/crl", "http://b/crl"]
    source.answering = "http://gone/crl"  # no longer one of the certificate's: ignored
    assert source.fetch_order() == ["http://a/crl", "http://b/crl", "http://c/crl"]
