"""Cross-checks: references between sections and HAProxy 3.0+ certificate consistency rules."""

from __future__ import annotations

from pathlib import Path

from staplegate.config.crtlist import parse_crt_list
from staplegate.config.model import CertOrigin, CertSourceKind, Config
from staplegate.config.parser.dispatch import parse_texts
from staplegate.config.semantic import build_config

from .helpers import BACKEND, check, errors, warnings

A = "[ALERT] config : parsing [{}:{}] : {}"
W = "[WARNING] config : parsing [t.cfg:{}] : {}"
FE = "frontend fe\n    bind 127.0.0.1:8443 ssl {}\n    default_backend app\n"


def build(
    cfg: str, lists: dict[str, str], env: dict[str, str] | None = None
) -> tuple[Config | None, list[str]]:
    """Parse `cfg` as t.cfg with crt-lists given in memory (what the loader would read)."""
    from dataclasses import replace

    parsed = parse_texts([("t.cfg", cfg)], env=env or {})
    proxies = []
    for proxy in parsed.proxies:
        binds = []
        for bind in proxy.binds:
            sources = []
            for source in bind.cert_sources:
                if source.kind is CertSourceKind.CRT_LIST:
                    crt_list, problems = parse_crt_list(
                        lists[source.path],
                        path=source.path,
                        crt_base=parsed.global_.crt_base,
                        key_base=parsed.global_.key_base,
                    )
                    assert problems == ()
                    source = replace(source, crt_list=crt_list)
                sources.append(source)
            binds.append(replace(bind, cert_sources=tuple(sources)))
        proxies.append(replace(proxy, binds=tuple(binds)))
    config, diagnostics = build_config(replace(parsed, proxies=tuple(proxies)))
    return config, [str(d) for d in diagnostics]


# ------------------------------------------------------------------ proxies and names
def test_missing_backends() -> None:
    assert errors("frontend fe\n    bind :80\n    default_backend nowhere\n") == [
        A.format("t.cfg", 1, "Proxy 'fe': unable to find required default_backend: 'nowhere'.")
    ]
    assert errors(
        "frontend fe\n    bind :80\n    use_backend nope if { ssl_fc }\n"
        "    default_backend app\n" + BACKEND
    ) == [A.format("t.cfg", 3, "frontend 'fe': unable to find required use_backend: 'nope'.")]


def test_duplicate_proxy_names_follow_capabilities() -> None:
    # a frontend and a backend may share a name, like in HAProxy
    config, diags = check("frontend app\n    bind :80\n    default_backend app\n" + BACKEND)
    assert diags == []
    assert config is not None
    assert errors("backend app\nlisten app\n    bind :80\n") == [
        A.format("t.cfg", 2, "listen 'app' has the same name as backend 'app' declared at t.cfg:1.")
    ]
    assert errors("frontend f\n    bind :1\nfrontend f\n    bind :2\n") == [
        A.format("t.cfg", 3, "frontend 'f' has the same name as frontend 'f' declared at t.cfg:1.")
    ]


def test_duplicate_server_names() -> None:
    assert errors("backend b\n    server s 127.0.0.1:1\n    server s 127.0.0.1:2\n") == [
        A.format(
            "t.cfg",
            3,
            "backend 'b' : server name 's' is already used by the server declared at t.cfg:2.",
        )
    ]


def test_frontend_without_bind_warns_like_haproxy() -> None:
    assert warnings("frontend fe\n    default_backend app\n" + BACKEND) == [
        W.format(
            1,
            "frontend 'fe' has no 'bind' directive. Please declare it as a backend if this was "
            "intended.",
        )
    ]


def test_ssl_bind_without_certificate() -> None:
    assert errors("frontend fe\n    bind :443 ssl\n    default_backend app\n" + BACKEND) == [
        A.format(
            "t.cfg",
            2,
            "Proxy 'fe': no SSL certificate specified for bind ':443' at [t.cfg:2] (use 'crt').",
        )
    ]


def test_http_frontend_to_tcp_backend() -> None:
    assert errors(
        "frontend fe\n    mode http\n    bind :80\n    default_backend app\n" + BACKEND
    ) == [
        A.format(
            "t.cfg",
            1,
            "frontend 'fe': unable to use backend 'app' with wrong mode, required: http, has: tcp.",
        )
    ]


def test_http_rules_in_tcp_mode_warn() -> None:
    assert warnings(
        "frontend fe\n    bind :80\n    http-request deny\n    default_backend app\n" + BACKEND
    ) == [W.format(3, "'http-request' rules ignored for frontend 'fe' as they require HTTP mode.")]


def test_zero_warning_turns_warnings_into_errors() -> None:
    config, diags = check("global\n    zero-warning\n    chroot /x\n")
    assert config is None
    assert diags[0].startswith("[ALERT] config : parsing [t.cfg:3] : 'chroot'")


# ------------------------------------------------------------------ references
def test_references_from_bind_store_and_list() -> None:
    cfg = (
        "global\n    crt-base certs\n    ocsp-update.mode on\n"
        "crt-store web\n    crt-base store\n    load crt site.pem ocsp site.der alias site "
        "ocsp-update off\n" + FE.format('crt plain.pem crt "@web/site" crt-list l.txt') + BACKEND
    )
    config, diags = build(cfg, {"l.txt": "listed.pem [alpn h2] www.example.test\n"})
    assert diags == []
    assert config is not None
    load, plain, store_use, listed = config.certificate_references()
    assert (load.origin, load.name, load.crt_path, load.ocsp_path) == (
        CertOrigin.CRT_STORE,
        "@web/site",
        Path("store/site.pem"),
        Path("store/site.der"),
    )
    assert (load.ocsp_update, load.effective_ocsp_update, load.discover_sidecars) == (
        False,
        False,
        False,
    )
    assert (plain.origin, plain.name, plain.ocsp_update, plain.effective_ocsp_update) == (
        CertOrigin.BIND,
        "certs/plain.pem",
        None,
        True,
    )
    assert plain.discover_sidecars
    assert (plain.frontend, plain.bind, plain.location.line) == ("fe", "bind 127.0.0.1:8443", 8)
    assert (store_use.origin, store_use.name, store_use.ocsp_path) == (
        CertOrigin.BIND,
        "@web/site",
        Path("store/site.der"),
    )
    assert store_use.effective_ocsp_update is False
    assert (listed.origin, listed.crt_list, listed.location.file, listed.location.line) == (
        CertOrigin.CRT_LIST,
        "l.txt",
        "l.txt",
        1,
    )
    assert listed.alpn == ("h2",)
    assert listed.sni_filters == ("www.example.test",)


def test_store_entry_must_exist_before_use() -> None:
    config, diags = build(FE.format('crt "@web/none"') + BACKEND, {})
    assert config is None
    assert diags == [
        A.format(
            "t.cfg",
            2,
            "unable to load certificate '@web/none' on this bind line: no crt-store entry has "
            "this name. Define it with 'load crt … [alias …]' in a crt-store section written "
            "before its first use.",
        )
    ]


def test_crt_store_section_rules() -> None:
    assert errors("crt-store s\n    load crt a.pem\n    crt-base x\n") == [
        A.format(
            "t.cfg",
            3,
            "'crt-base' must be set before the first 'load' line of the crt-store section (it "
            "only applies to the lines after it); move it up.",
        )
    ]
    assert errors("crt-store s\n    load crt a.pem ocsp-update yes\n") == [
        A.format("t.cfg", 2, "cannot parse 'ocsp-update' value 'yes', 'on' or 'off' is expected.")
    ]
    assert errors("crt-store s\n    load key a.key\n") == [
        A.format("t.cfg", 2, "'load' : 'crt' is mandatory.")
    ]
    assert errors("crt-store s\n    load crt a.pem alais x\n") == [
        A.format("t.cfg", 2, "'load' : unknown keyword 'alais'. Did you mean 'alias' maybe ?")
    ]
    assert errors("crt-store s\n    load crt a.pem\n    load crt b.pem alias a.pem\n") == [
        A.format(
            "t.cfg",
            3,
            "Cannot create a new certificate store entry '@s/a.pem', this name is already "
            "used at t.cfg:2.",
        )
    ]
    assert errors("crt-store s\n    ocsp-update on\n") == [
        A.format("t.cfg", 2, "unknown keyword 'ocsp-update' in 'crt-store' section.")
    ]


# ------------------------------------------------------------------ §2.5.2 consistency
def test_plain_then_keyword_line_lists_discovered_sidecars() -> None:
    cfg = FE.format("crt site.pem crt-list l.txt") + BACKEND
    config, diags = build(cfg, {"l.txt": "site.pem [ocsp-update on]\n"})
    assert config is None
    assert diags == [
        A.format(
            "l.txt",
            1,
            "'site.pem' in crt-list 'l.txt' line 1, is already defined with incompatible "
            "parameters:\n"
            "Can't use the certificate previously defined without any keyword with these "
            "keywords:\n"
            "- different parameter 'ocsp-update' : previously 'default' (ocsp-update.mode off) "
            "vs 'on'",
        )
    ]


def test_keyword_then_plain_fails_even_when_values_agree() -> None:
    cfg = FE.format("crt-list l.txt crt site.pem") + BACKEND
    config, diags = build(cfg, {"l.txt": "site.pem [ocsp-update off]\n"})
    assert config is None
    assert diags == [
        A.format(
            "t.cfg",
            2,
            "'bind 127.0.0.1:8443' in section 'frontend' : Can't load 'site.pem', is already "
            "defined with incompatible parameters:\n"
            "Can't use the certificate previously defined with keywords without these keywords:",
        )
    ]


def test_keyword_lines_with_named_files_show_sidecar_differences() -> None:
    cfg = FE.format("crt site.pem crt-list l.txt") + BACKEND
    config, diags = build(cfg, {"l.txt": "site.pem [ocsp site.der]\n"})
    assert config is None
    assert diags[0].endswith(
        "Can't use the certificate previously defined without any keyword with these "
        "keywords:\n"
        "- different parameter 'ocsp' : previously 'site.pem.ocsp' vs 'site.der'\n"
        "- different parameter 'issuer' : previously 'site.pem.issuer' vs '(null)'\n"
        "- different parameter 'sctl' : previously 'site.pem.sctl' vs '(null)'"
    )


def test_two_keyword_lines_with_same_effective_values_are_fine() -> None:
    config, diags = build(
        FE.format("crt-list l.txt") + BACKEND,
        {"l.txt": "site.pem [ocsp-update on]\nsite.pem [ocsp-update on alpn h2] a.example\n"},
    )
    assert diags == []
    assert config is not None
    assert len(config.certificate_references()) == 2


def test_explicit_vs_default_compares_effective_values() -> None:
    lists = {"l.txt": "site.pem [ocsp-update on]\nsite.pem [alpn h2 ocsp-update off]\n"}
    config, diags = build(FE.format("crt-list l.txt") + BACKEND, lists)
    assert config is None
    assert diags == [
        A.format(
            "l.txt",
            2,
            "'site.pem' in crt-list 'l.txt' line 2, is already defined with incompatible "
            "parameters:\n- different parameter 'ocsp-update' : previously 'on' vs 'off'",
        )
    ]
    # with the global mode on, an explicit 'on' and a default agree...
    mode_on = "global\n    ocsp-update.mode on\n"
    lists = {"l.txt": "site.pem [ocsp-update on]\nsite.pem [key site.key ocsp-update on]\n"}
    config, diags = build(mode_on + FE.format("crt-list l.txt") + BACKEND, lists)
    assert config is None
    assert "- different parameter 'key' : previously '(null)' vs 'site.key'" in diags[0]


def test_crt_store_then_plain_bind_is_fine_and_keyword_line_is_compared() -> None:
    store = "crt-store web\n    load crt site.pem ocsp-update on\n"
    config, diags = build(store + FE.format('crt "@web/site.pem"') + BACKEND, {})
    assert diags == []
    assert config is not None
    config, diags = build(
        store + FE.format("crt-list l.txt") + BACKEND,
        {"l.txt": "@web/site.pem [ocsp-update off]\n"},
    )
    assert config is None
    assert diags == [
        A.format(
            "l.txt",
            1,
            "'@web/site.pem' in crt-list 'l.txt' line 1, is already defined with incompatible "
            "parameters:\n- different parameter 'ocsp-update' : previously 'on' vs 'off'",
        )
    ]


def test_unnamed_store_entry_is_found_by_path() -> None:
    cfg = "crt-store\n    load crt site.pem ocsp-update on\n" + FE.format("crt site.pem") + BACKEND
    config, diags = build(cfg, {})
    assert diags == []
    assert config is not None
    _, use = config.certificate_references()
    assert (use.discover_sidecars, use.effective_ocsp_update) == (False, True)


def test_del_ext_and_extra_files_shape_discovery_names() -> None:
    cfg = (
        "global\n    ssl-load-extra-del-ext\n    ssl-load-extra-files ocsp\n"
        + FE.format("crt site.crt crt-list l.txt")
        + BACKEND
    )
    config, diags = build(cfg, {"l.txt": "site.crt [issuer ca.pem]\n"})
    assert config is None
    assert diags[0].endswith(
        "keywords:\n- different parameter 'ocsp' : previously 'site.ocsp' vs '(null)'\n"
        "- different parameter 'issuer' : previously '(null)' vs 'ca.pem'"
    )
