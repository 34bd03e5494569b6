"""The monitoring guide's files (docs/how-to/monitor/) against the real thing.

Every metric an alert rule or a dashboard query names, and every label it selects or groups
by, must exist in a real staplegate's /metrics: one serving a good, a revoked, a failing and a
CRL-watched certificate (so each family has samples), scraped over a plain bind. That part
always runs. Where promtool exists (./dev takes it from Debian's prometheus package), the
rules also pass `promtool check rules` and their unit tests (`promtool test rules`).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from staplegate.testpki.pytest_plugin import Pki

from .harness import free_port, http_backend, poll, staplegate

pytestmark = pytest.mark.slow

MONITOR = Path(__file__).resolve().parents[2] / "docs" / "how-to" / "monitor"
RULES = MONITOR / "staplegate-alerts.yml"
RULE_TESTS = MONITOR / "staplegate-alerts.test.yml"
DASHBOARD = MONITOR / "staplegate-certificates.json"

CONFIG = """\
global
    log stdout format raw local0 info
    ocsp-update.mode on

defaults
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend www
    mode tcp
    bind 127.0.0.1:{port} ssl crt-list {crt_list}
    default_backend web

frontend monitoring
    mode http
    bind 127.0.0.1:{metrics}
    http-request use-service prometheus-exporter if {{ path /metrics }}
    stats enable
    stats uri /stats

backend web
    mode tcp
    server web1 127.0.0.1:{backend} check
"""

# --- PromQL, as much as naming metrics and labels needs ------------------------------------

_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan",
}  # fmt: skip
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_TOKEN = re.compile(
    r'(?P<string>"(?:[^"\\]|\\.)*")'
    r'|(?P<matchers>\{(?:"(?:[^"\\]|\\.)*"|[^}"])*\})'
    r"|(?P<range>\[[^\]]*\])"
    r"|(?P<number>\d+(?:\.\d+)?(?:e[+-]?\d+)?)"
    r"|(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<call>\s*\()?"
    r"|(?P<other>.)",
    re.S,
)
_MATCHER_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"')


@dataclass(frozen=True)
class Query:
    """What one PromQL expression asks of the scrape."""

    where: str
    metrics: dict[str, set[str]]  # metric -> the labels its selector matches on
    grouping: set[str]  # labels named in by/on/without/ignoring/group_*


def parse_query(expr: str, where: str) -> Query:
    grouping = {
        label.strip() for _, labels in _GROUPING.findall(expr) for label in labels.split(",")
    }
    text = _GROUPING.sub(" ", expr)
    metrics: dict[str, set[str]] = {}
    last: str | None = None
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if match["name"] is not None:
            name = match["name"]
            if match["call"] is not None or name in _KEYWORDS:
                last = None  # a function (rate, histogram_quantile, vector) or an operator
            else:
                metrics.setdefault(name, set())
                last = name
        elif kind == "matchers" and last is not None:
            metrics[last] |= set(_MATCHER_LABEL.findall(match["matchers"]))
        elif kind != "other" or not match.group().isspace():
            last = None
    return Query(where, metrics, grouping - {""})


def test_parse_query_finds_metrics_labels_and_grouping() -> None:
    query = parse_query(
        'sum by (responder, le) (rate(a_bucket{x="}",y!~"b"}[5m])) > 0.5 unless on (z) '
        'b_total{result="s"} and histogram_quantile(0.9, c) or vector(0)',
        "example",
    )
    assert query.metrics == {"a_bucket": {"x", "y"}, "b_total": {"result"}, "c": set()}
    assert query.grouping == {"responder", "le", "z"}


def rule_queries() -> list[Query]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [
        parse_query(rule["expr"], f"{RULES.name}: {rule['alert']}")
        for group in document["groups"]
        for rule in group["rules"]
    ]


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def dashboard_queries() -> list[Query]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            queries.append(parse_query(target["expr"], f"{DASHBOARD.name}: {panel['title']}"))
    for variable in dashboard["templating"]["list"]:
        found = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["definition"])
        assert found is not None, variable
        queries.append(Query(f"variable {variable['name']}", {found[1]: {found[2]}}, set()))
    assert any("expr" in node for node in _walk(dashboard["panels"]))
    return queries


# --- a real scrape ---------------------------------------------------------------------------

#: series Prometheus makes itself for every target, with the target's labels
SYNTHETIC: dict[str, set[str]] = {"up": {"job", "instance"}}

Exposed = dict[str, set[str]]  # sample name -> label names seen on it


def exposed(text: str) -> Exposed:
    """Every sample name a query may use, with its labels (a family without samples: its
    names by type, so the check fails on labels, not on the name)."""
    found: Exposed = {}
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    for family in text_string_to_metric_families(text):
        for suffix in suffixes.get(family.type, ("",)):
            found.setdefault(family.name + suffix, set())
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return found


def scrape(port: int) -> str | None:
    """/metrics, or None while it answers 503 (the master has not pushed the metrics yet)."""
    done = subprocess.run(
        ["curl", "-sS", "--fail", "--max-time", "10", f"http://127.0.0.1:{port}/metrics"],
        capture_output=True, text=True, check=False, timeout=20,
    )  # fmt: skip
    return done.stdout if done.returncode == 0 else None


def _has(text: str, name: str, **labels: str) -> bool:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return True
    return False


def _cli(*args: str | Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "staplegate", *map(str, args)],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip


def real_scrape(tmp_path: Path, pki: Pki) -> str:
    """/metrics of a staplegate whose every staplegate_* family has samples."""
    crl_url = f"{pki.responder.url}/crl"
    good = pki.issue("good.example.test").bundle_path
    revoked = pki.issue("revoked.example.test").bundle_path
    pki.revoke("revoked.example.test", reason="keyCompromise")
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: every update fails
    failing = pki.issue("failing.example.test", ocsp_url=dead).bundle_path
    crl_only = pki.issue("crl.example.test", ocsp_url=None, crl_url=crl_url).bundle_path
    _cli("ca", "crl", pki.directory)
    crt_list = tmp_path / "crt-list.txt"
    crt_list.write_text(
        "".join(f"{path}\n" for path in (good, revoked, failing, crl_only)), encoding="utf-8"
    )
    metrics = free_port()
    with http_backend() as backend:
        config = tmp_path / "haproxy.cfg"
        config.write_text(
            CONFIG.format(port=free_port(), crt_list=crt_list, metrics=metrics, backend=backend),
            encoding="utf-8",
        )
        with staplegate(config, tmp_path / "state", workers=1) as proc:
            proc.wait_for("staplegate started")
            wanted = (
                ("staplegate_ocsp_stapled", {"certificate": str(good)}),
                ("staplegate_ocsp_response_status", {"certificate": str(revoked)}),
                ("staplegate_ocsp_updates_total", {"responder": dead, "result": "http_error"}),
                ("staplegate_ocsp_not_stapled", {"certificate": str(crl_only)}),
                ("staplegate_crl_last_success_timestamp_seconds", {"url": crl_url}),
                ("staplegate_certificate_revoked", {"certificate": str(crl_only)}),
                ("staplegate_ocsp_fetch_duration_seconds_bucket", {"responder": dead}),
                ("staplegate_tls_handshakes_total", {"frontend": "www"}),
            )
            last = ""

            def complete() -> str | None:
                nonlocal last
                last = scrape(metrics) or ""
                missing = [name for name, labels in wanted if not _has(last, name, **labels)]
                return None if missing else last

            return poll(
                complete,
                timeout=30,
                interval=0.3,
                failure=lambda: f"/metrics never had every family with samples:\n{last}",
            )


def test_every_metric_and_label_the_rules_and_dashboard_name_is_scraped(
    tmp_path: Path, pki: Pki
) -> None:
    text = real_scrape(tmp_path, pki)
    found = exposed(text) | SYNTHETIC
    # staplegate_ocsp_fetch_duration_seconds: the good and the revoked certificate share the
    # test responder, answering in well under a second; the dead one fails at once
    counts = {
        sample.labels["responder"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "staplegate_ocsp_fetch_duration_seconds_count"
    }
    fast = {
        sample.labels["responder"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "staplegate_ocsp_fetch_duration_seconds_bucket"
        and sample.labels["le"] == "1.0"
    }
    responder = pki.ca.default_ocsp_url
    assert responder is not None
    assert counts[responder] >= 2
    assert fast[responder] == counts[responder]
    queries = rule_queries() + dashboard_queries()
    assert len(queries) > 15
    problems = []
    for query in queries:
        labels_here: set[str] = set()
        for metric, labels in query.metrics.items():
            if metric not in found:
                problems.append(f"{query.where}: no metric {metric}")
                continue
            labels_here |= found[metric]
            if labels - found[metric]:
                problems.append(f"{query.where}: {metric} has no label {labels - found[metric]}")
        if query.grouping - labels_here:
            problems.append(f"{query.where}: grouping by missing {query.grouping - labels_here}")
    assert not problems, "\n".join(problems)
    # the rules the guide promises are all there
    alerts = {query.where.split(": ")[1] for query in rule_queries()}
    assert alerts >= {
        "StaplegateDown",
        "StaplegateStapleExpiringSoon",
        "StaplegateCertificateNotStapled",
        "StaplegateRevokedStaple",
        "StaplegateResponderFailing",
        "StaplegateCrlRevoked",
    }


def promtool() -> str | None:
    beside_python = Path(sys.executable).with_name("promtool")
    return shutil.which("promtool") or (str(beside_python) if beside_python.exists() else None)


def test_promtool_checks_the_rules_and_runs_their_unit_tests() -> None:
    tool = promtool()
    if tool is None:
        pytest.skip(
            "promtool not found (./dev setup takes it from Debian's prometheus package into "
            ".venv/bin); the metric-name check above ran without it"
        )
    check = subprocess.run(
        [tool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 9 rules found" in check.stdout
    tests = subprocess.run(
        [tool, "test", "rules", RULE_TESTS.name],
        capture_output=True, text=True, timeout=60, cwd=MONITOR,
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "SUCCESS" in tests.stdout
