"""bench/scale.py: the Pss and worker-log parsing, and the generated state directory being one
that staplegate's own store loads in full (the benchmark's "0 responder requests" rests on it)."""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import importlib.util
import io
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from types import ModuleType
from xml.etree import ElementTree

import pytest
from cryptography.hazmat.primitives import serialization

from staplegate.deploy.plan import validate
from staplegate.ocsp.certid import CertId
from staplegate.store import FileStapleStore

REPOSITORY = Path(__file__).resolve().parents[3]

SMAPS_ROLLUP = """\
55d0c0a00000-7ffd5b9fe000 ---p 00000000 00:00 0                          [rollup]
Rss:              195332 kB
Pss:               86113 kB
Pss_Anon:          60120 kB
Shared_Clean:      20000 kB
"""


def load_scale() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scale", REPOSITORY / "bench" / "scale.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_pss_is_read_from_smaps_rollup_in_bytes() -> None:
    assert load_scale().parse_pss(SMAPS_ROLLUP) == 86113 * 1024


def test_worker_table_lines_give_pid_and_size() -> None:
    scale = load_scale()
    assert scale.parse_worker_table("worker 4242: staple table replaced: 5000 staples") == (
        4242,
        5000,
    )
    assert scale.parse_worker_table(
        "worker 7: staple table: 12 changed, 0 withdrawn: 50000 staples"
    ) == (7, 50000)
    assert scale.parse_worker_table("staplegate started: 2 workers") is None


def test_generated_staples_load_from_the_state_directory(tmp_path: Path) -> None:
    setup = load_scale().generate(tmp_path, 3, "http://127.0.0.1:9/")
    scan = FileStapleStore(setup.state).scan()
    assert len(scan.staples) == 3
    assert not scan.problems
    assert len(setup.crt_list.read_text().splitlines()) == 3
    assert setup.names == [f"host{i}.bench.test" for i in range(3)]


def test_metrics_render_and_worker_exit_lines_are_read() -> None:
    scale = load_scale()
    line = "metrics: 61234567 bytes rendered in 4.210 s (0.812 s reading on the loop)"
    assert scale.parse_metrics_render(line) == (61234567, 4.21, 0.812)
    assert scale.parse_metrics_render("metrics: rendering failed; scrapes get ...") is None
    assert scale.parse_worker_exit("worker #1 (4242) exited with status 0") == 4242
    assert scale.parse_worker_exit("worker 4242: staple table replaced: 0 staples") is None


def test_failures_are_summarised_most_frequent_first() -> None:
    summary = load_scale().failures_summary(["B: x", "A: y", "B: x"])
    assert summary == "2× B: x; 1× A: y"


def _args(**overrides: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "crt_store": False,
        "scrape": False,
        "metrics_port": 8405,
        "backend_port": 8080,
    }
    values.update(overrides)
    return argparse.Namespace(**values)


@pytest.mark.parametrize("crt_store", [False, True])
def test_the_configuration_is_one_staplegate_accepts(tmp_path: Path, crt_store: bool) -> None:
    scale = load_scale()
    setup = scale.generate(tmp_path, 3, "http://127.0.0.1:9/")
    config, port = scale.staplegate_config(_args(crt_store=crt_store, scrape=True), setup, tmp_path)
    text = config.read_text()
    assert f"127.0.0.1:{port} ssl crt-list" in text
    assert "use-service prometheus-exporter" in text
    assert ("crt-store bench" in text) is crt_store
    generation, plan = validate(
        [str(config)], now=dt.datetime.now(dt.UTC), err=io.StringIO(), startup=False
    )
    assert generation is not None
    assert plan is not None
    served = {entry.name for entry in generation.loaded() if entry.certificate is not None}
    assert len(served) == 3


def test_the_plot_draws_one_line_per_worker_and_the_markers(tmp_path: Path) -> None:
    scale = load_scale()
    follow = scale.Follower(tmp_path / "log", 0.0)
    follow.tables = [(1.0, 11, 0), (1.0, 12, 0), (3.5, 11, 100), (3.6, 12, 100), (9.0, 13, 100)]
    follow.exited = {11: 9.1, 12: 9.1}
    result = {"listening": 0.8, "serving": 1.0, "stapled": 3.6, "reload signalled": 5.0}
    svg = ElementTree.fromstring(scale.plot(follow, result, 100))
    namespace = "{http://www.w3.org/2000/svg}"
    assert len(svg.findall(f"{namespace}path")) == 3
    labels = " ".join(text.text or "" for text in svg.iter(f"{namespace}text"))
    for label in ("first handshake 1.0 s", "all stapled 3.6 s", "SIGUSR2 5.0 s", "pid 13"):
        assert label in labels


def test_cold_generation_stores_nothing_and_the_responder_answers_each_serial(
    tmp_path: Path,
) -> None:
    scale = load_scale()
    responder = scale.PresignedResponder()
    thread = threading.Thread(target=responder.serve_forever, daemon=True)
    thread.start()
    try:
        setup = scale.generate(tmp_path, 2, responder.url, store=False)
        responder.responses = setup.responses
        assert not list(setup.state.iterdir())
        assert len(setup.responses) == 2
        for serial, der in setup.responses.items():
            request = (
                CertId("sha1", b"\x00" * 20, b"\x00" * 20, serial)
                .request()
                .public_bytes(serialization.Encoding.DER)
            )
            post = urllib.request.Request(responder.url, data=request, method="POST")
            with urllib.request.urlopen(post, timeout=10) as answer:
                assert answer.read() == der
            path = urllib.parse.quote(base64.b64encode(request).decode(), safe="")
            with urllib.request.urlopen(responder.url + path, timeout=10) as answer:
                assert answer.read() == der
        assert len(responder.answered) == 4
        assert scale.answer_for(b"garbage", setup.responses) == b""
    finally:
        responder.shutdown()
        responder.server_close()
        thread.join(10)


def test_cold_rates_are_counted_from_the_first_answer(tmp_path: Path) -> None:
    scale = load_scale()
    follow = scale.Follower(tmp_path / "log", 100.0)
    follow.full_at = {11: 14.0, 12: 15.0}
    rates = scale.cold_rates([105.0 + i / 250 for i in range(2501)], follow, 2501)
    assert rates["cold first fetch"] == 5.0
    assert rates["cold fetch rate"] == pytest.approx(250.0)
    assert rates["cold stapled seconds"] == pytest.approx(10.0)
    assert rates["cold stapled rate"] == pytest.approx(250.1)
