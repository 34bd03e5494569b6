"""The reviewed list of keywords staplegate accepts and ignores (issue 14, defect 3).

An ignored keyword gets a warning and changes nothing. That is only acceptable when it
cannot change what clients or servers see, nor what is secure: every such keyword is pinned
here, and adding one to the registry (the keyword table of its section module under
`config/parser/`, each with its reason; `config/keywords.py` derives the lists read here)
fails this test until it is reviewed and added below. Anything else must be implemented or
refused.
"""

from __future__ import annotations

import pytest

from staplegate.config import keywords

from .helpers import BACKEND, errors, warnings

# derived list in `keywords` -> keywords reviewed as "cannot change traffic or security"; the
# reason each one is ignored lives next to it in the registry and is checked to be there.
REVIEWED: dict[str, frozenset[str]] = {
    "GLOBAL_IGNORED": frozenset(
        {
            "busy-polling",
            "chroot",
            "close-spread-time",
            "cluster-secret",
            "cpu-map",
            "cpu-policy",
            "description",
            "expose-experimental-directives",
            "fd-hard-limit",
            "gid",
            "grace",
            "h1-accept-payload-with-any-method",
            "httpclient.resolvers.id",
            "insecure-fork-wanted",
            "localpeer",
            "log-send-hostname",
            "master-worker",
            "maxpipes",
            "maxzlibmem",
            "mworker-max-reloads",
            "node",
            "noepoll",
            "nogetaddrinfo",
            "nopoll",
            "noreuseport",
            "nosplice",
            "numa-cpu-mapping",
            "pp2-never-send-local",
            "profiling.memory",
            "profiling.tasks",
            "quiet",
            "server-state-base",
            "server-state-file",
            "set-dumpable",
            "spread-checks",
            "max-spread-checks",
            "ssl-mode-async",
            "strict-limits",
            "thread-groups",
            "uid",
            "ulimit-n",
            "unix-bind",
        }
    ),
    "GLOBAL_PARSED_BUT_IGNORED": frozenset(
        {
            "daemon",
            "group",
            "httpclient.resolvers.disabled",
            "httpclient.resolvers.prefer",
            "ssl-default-server-ciphersuites",
            "ssl-skip-self-issued-ca",
            "tune.ssl.default-dh-param",
            "user",
        }
    ),
    "PROXY_IGNORED": frozenset(
        {
            "timeout client-fin",
            "timeout server-fin",
            "timeout tarpit",
            "backlog",
            "description",
            "email-alert from",
            "email-alert level",
            "email-alert mailers",
            "email-alert myhostname",
            "email-alert to",
            "grace",
            "guid",
            "hash-balance-factor",
            "http-reuse",
            "id",
            "log-format",
            "log-tag",
            "option abortonclose",
            "option clitcpka",
            "option contstats",
            "option dontlog-normal",
            "option dontlognull",
            "option http-buffer-request",
            "option http-keep-alive",
            "option http-pretend-keepalive",  # we never announce close to servers
            "option http-server-close",
            "option independent-streams",
            "option log-health-checks",
            "option log-separate-errors",
            "option logasap",
            "option nolinger",
            "option prefer-last-server",
            "option socket-stats",
            "option splice-auto",
            "option splice-request",
            "option splice-response",
            "option srvtcpka",
            "option tcpka",
            "stats timeout",
        }
    ),
    "BIND_IGNORED": frozenset(
        {
            "backlog",
            "defer-accept",
            "id",
            "level",
            "name",
            "nice",
            "process",
            "severity-output",
            "shards",
            "tcp-ut",
            "thread",
        }
    ),
    "SERVER_IGNORED": frozenset(
        {
            "check-sni",
            "downinter",
            "maxqueue",
            "fastinter",
            "guid",
            "id",
            "init-addr",
            "log-proto",
            "pool-conn-name",
            "pool-low-conn",
            "pool-max-conn",
            "pool-purge-delay",
            "tfo",
        }
    ),
}
REVIEWED_SECTIONS = frozenset(
    {
        "acme",
        "cache",
        "fcgi-app",
        "http-errors",
        "mailers",
        "peers",
        "program",
        "resolvers",
        "ring",
        "traces",
    }
)


@pytest.mark.parametrize("table", sorted(REVIEWED))
def test_ignored_keywords_are_the_reviewed_list(table: str) -> None:
    registry: dict[str, str] = getattr(keywords, table)
    assert frozenset(registry) == REVIEWED[table], (
        "an ignored keyword was added or removed: review it (does it change traffic or "
        "security? then implement or refuse it) and update REVIEWED"
    )
    for keyword, reason in registry.items():
        assert reason.strip(), f"{table}[{keyword!r}] needs a reason"


def test_ignored_sections_are_the_reviewed_list() -> None:
    assert keywords.IGNORED_SECTIONS == REVIEWED_SECTIONS


def test_errorfile_is_served_not_ignored() -> None:
    """Issue 18: `errorfile` changes traffic, so it is served (the file is read by the plan,
    tests/unit/deploy/test_plan.py) and no longer an ignored keyword."""
    text = "defaults\n    errorfile 503 /etc/haproxy/errors/503.http\n" + BACKEND
    assert errors(text) == []
    assert not any("'errorfile'" in w for w in warnings(text))
    assert "errorfile" not in keywords.PROXY_IGNORED


def test_client_certificate_options_are_no_longer_refused() -> None:
    for option in ("verify", "ca-file", "crl-file", "ca-ignore-err", "crt-ignore-err"):
        assert option in keywords.BIND_SUPPORTED
        assert option not in keywords.BIND_REFUSED
    assert "crl-file" in keywords.CRTLIST_SUPPORTED


def test_parsed_but_ignored_globals_warn() -> None:
    text = (
        "global\n    httpclient.resolvers.prefer ipv6\n    ssl-skip-self-issued-ca\n"
        "    ssl-default-server-ciphersuites TLS_AES_128_GCM_SHA256\n"
        "    httpclient.ssl.verify none\n    httpclient.ssl.ca-file /etc/ca.pem\n"
    )
    found = warnings(text)
    assert len(found) == 5, found
    assert all("is accepted but ignored by staplegate" in w for w in found)
    quiet = "global\n    httpclient.ssl.verify required\n    httpclient.ssl.ca-file @system-ca\n"
    assert warnings(quiet) == []


def test_http_reuse_never_is_refused() -> None:
    """`http-reuse never` keeps clients' requests on separate server connections in
    HAProxy; staplegate pools them, so ignoring it would weaken isolation."""
    found = errors("backend app\n    http-reuse never\n    server a 127.0.0.1:9000\n")
    assert len(found) == 1
    assert "'http-reuse never' is a HAProxy keyword that staplegate does not support" in found[0]
    assert errors("backend app\n    http-reuse safe\n    server a 127.0.0.1:9000\n") == []


@pytest.mark.parametrize("table", ["GLOBAL", "PROXY", "BIND", "SERVER", "CRTLIST"])
def test_derived_lists_do_not_overlap(table: str) -> None:
    """One entry per keyword in the registry: no keyword is both supported and refused."""
    supported = getattr(keywords, f"{table}_SUPPORTED")
    refused = getattr(keywords, f"{table}_REFUSED")
    ignored = set(getattr(keywords, f"{table}_IGNORED", {}))
    assert not supported & refused
    assert not ignored & refused
