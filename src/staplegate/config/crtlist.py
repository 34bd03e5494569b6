"""Parse crt-list files: `<crt> [<options>] [<sni filter> …]` per line.

Blank lines and lines starting with `#` are skipped; words are split with the configuration
lexer (quotes and escapes work, no environment expansion). Certificate paths are relative to
the global `crt-base`, `key` paths to `key-base`, other files to `crt-base`,
as in HAProxy (docs/reference/configuration.md).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from staplegate.config.diagnostics import Diagnostic, DiagnosticSink, Reason, SourceLocation
from staplegate.config.lexer import lex
from staplegate.config.model import CrtList, CrtListEntry, TlsVersion, Verify
from staplegate.config.parser.registry import (
    KeywordClass,
    KeywordTable,
    refused_all,
    refused_message,
    suggest,
    supported,
)

_SNI_FILTER = re.compile(r"!?(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?")
TLS_VERSIONS = {v.value: v for v in TlsVersion}

# the options a crt-list line knows: each takes a value except the two refused flags
CRT_LIST_OPTIONS: KeywordTable[None] = KeywordTable(
    [
        *(
            supported(name, takes_value=True)
            for name in (
                "alpn",
                "ocsp-update",
                "ocsp-responder",
                "ocsp",
                "issuer",
                "key",
                "sctl",
                "ssl-min-ver",
                "ssl-max-ver",
                "ciphers",
                "ciphersuites",
                "verify",
                "ca-file",
                "crl-file",
            )
        ),
        *refused_all(
            [
                "crt",
                "npn",
                "ca-verify-file",
                "curves",
                "ecdhe",
                "sigalgs",
                "client-sigalgs",
                "ca-sign-file",
            ],
            takes_value=True,
        ),
        *refused_all(["no-ca-names", "allow-0rtt"]),
    ]
)


def join_base(base: str | None, path: str) -> str:
    """HAProxy's `<base>/<path>` for relative paths; absolute paths are kept."""
    if base is None or path.startswith("/"):
        return path
    return f"{base.rstrip('/')}/{path}"


def parse_ocsp_update(value: str | None) -> bool | None:
    """`on` / `off` exactly (3.0+ rule); anything else is None."""
    if value == "on":
        return True
    if value == "off":
        return False
    return None


def ocsp_update_error(value: str) -> str:
    return f"cannot parse 'ocsp-update' value '{value}', 'on' or 'off' is expected."


def responder_url_error(keyword: str, value: str) -> str | None:
    """Why `value` cannot override a certificate's OCSP responder, or None when it can.

    `ocsp-update.responder-url` / `ocsp-responder` (staplegate extensions): an http or
    https URL with a host, as an internal mirror of the CA's responder would have.
    """
    parsed = urlsplit(value)
    if parsed.scheme.lower() not in ("http", "https") or not parsed.hostname:
        return f"'{keyword}' expects an http:// or https:// URL with a host, not '{value}'."
    if any(ch.isspace() or ord(ch) < 0x20 for ch in value):
        return f"'{keyword}' : the URL '{value}' contains spaces or control characters."
    return None


def parse_crt_list(
    text: str,
    *,
    path: str,
    crt_base: str | None,
    key_base: str | None,
    ca_base: str | None = None,
) -> tuple[CrtList, tuple[Diagnostic, ...]]:
    """Parse one crt-list; every problem is reported, good lines are kept."""
    sink = DiagnosticSink()
    result = lex(text, file=path, env={})
    sink.extend(result.diagnostics)
    entries: list[CrtListEntry] = []
    for line in result.lines:
        where = SourceLocation(path, line.number)
        entry = _parse_line(list(line.args), where, (crt_base, key_base, ca_base), sink)
        if entry is not None:
            entries.append(entry)
    return CrtList(path, tuple(entries)), sink.snapshot()


def _parse_line(
    args: list[str],
    where: SourceLocation,
    bases: tuple[str | None, str | None, str | None],
    sink: DiagnosticSink,
) -> CrtListEntry | None:
    crt_base, key_base, ca_base = bases
    crt = args[0]
    rest = args[1:]
    options: list[str] = []
    if crt.startswith("["):
        sink.error(where, "crt-list", "missing certificate path before the option block")
        return None
    if rest and rest[0].startswith("["):
        rest[0] = rest[0][1:]
        closed = False
        while rest and not closed:
            word = rest.pop(0)
            if word.endswith("]"):
                word = word[:-1]
                closed = True
            if word:
                options.append(word)
        if not closed:
            sink.error(
                where, "crt-list", "missing ']' at the end of the option block", Reason.SYNTAX
            )
            return None
    filters = tuple(rest)
    ok = True
    for sni in filters:
        if not _SNI_FILTER.fullmatch(sni):
            # HAProxy (3.x) takes any word as a filter; one that is no host name can never
            # equal a client's SNI, so the line's certificate is simply never chosen for it
            sink.warning(
                where,
                "crt-list",
                f"SNI filter '{sni}' is not a host name ('name', '*.domain' or '!name'): "
                "no client can send it, so this certificate is never chosen for it",
                Reason.INVALID_VALUE,
            )
    values: dict[str, str] = {}
    index = 0
    while index < len(options):
        keyword = options[index]
        option = CRT_LIST_OPTIONS.get(keyword)
        refused = option is not None and option.kind is KeywordClass.REFUSED
        if refused and option is not None and not option.takes_value:
            sink.error(where, keyword, refused_message(keyword), Reason.UNSUPPORTED)
            ok = False
            index += 1
            continue
        if option is None:
            hint = suggest(keyword, CRT_LIST_OPTIONS.names())
            suffix = f" Did you mean '{hint}' maybe ?" if hint else ""
            sink.error(
                where,
                keyword,
                f"unknown ssl keyword '{keyword}' in crt-list.{suffix}",
                Reason.UNKNOWN_KEYWORD,
            )
            return None
        if index + 1 >= len(options):
            sink.error(where, keyword, f"'{keyword}' : missing value", Reason.MISSING_ARGUMENT)
            return None
        value = options[index + 1]
        index += 2
        if refused:
            sink.error(where, keyword, refused_message(keyword), Reason.UNSUPPORTED)
            ok = False
            continue
        values[keyword] = value
    ocsp_update: bool | None = None
    if "ocsp-update" in values:
        ocsp_update = parse_ocsp_update(values["ocsp-update"])
        if ocsp_update is None:
            sink.error(where, "ocsp-update", ocsp_update_error(values["ocsp-update"]))
            ok = False
    responder = values.get("ocsp-responder")
    if responder is not None:
        problem = responder_url_error("ocsp-responder", responder)
        if problem is not None:
            sink.error(where, "ocsp-responder", problem)
            ok = False
    versions: dict[str, TlsVersion | None] = {}
    for keyword in ("ssl-min-ver", "ssl-max-ver"):
        versions[keyword] = None
        if keyword in values:
            versions[keyword] = TLS_VERSIONS.get(values[keyword])
            if versions[keyword] is None:
                sink.error(
                    where,
                    keyword,
                    f"'{keyword}' : expects 'SSLv3', 'TLSv1.0', 'TLSv1.1', 'TLSv1.2' or 'TLSv1.3'",
                )
                ok = False
    verify: Verify | None = None
    if "verify" in values:
        try:
            verify = Verify(values["verify"])
        except ValueError:
            sink.error(where, "verify", "'verify' : expects 'none', 'optional' or 'required'")
            ok = False
    alpn = tuple(values["alpn"].split(",")) if "alpn" in values else None
    if not ok:
        return None
    return CrtListEntry(
        location=where,
        crt=crt,
        crt_path=crt if crt.startswith("@") else join_base(crt_base, crt),
        sni_filters=tuple(f.lower() for f in filters),
        alpn=alpn,
        ocsp_update=ocsp_update,
        ocsp_responder=responder,
        key=join_base(key_base, values["key"]) if "key" in values else None,
        ocsp=join_base(crt_base, values["ocsp"]) if "ocsp" in values else None,
        issuer=join_base(crt_base, values["issuer"]) if "issuer" in values else None,
        sctl=join_base(crt_base, values["sctl"]) if "sctl" in values else None,
        ssl_min_ver=versions["ssl-min-ver"],
        ssl_max_ver=versions["ssl-max-ver"],
        ciphers=values.get("ciphers"),
        ciphersuites=values.get("ciphersuites"),
        verify=verify,
        ca_file=join_base(ca_base, values["ca-file"]) if "ca-file" in values else None,
        crl_file=join_base(ca_base, values["crl-file"]) if "crl-file" in values else None,
    )
