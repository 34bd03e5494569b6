"""Fuzz target: the configuration lexer, parser and semantic checks, and the crt-list parser.

Configuration files are operator input, but `staplegate -c` is what operators run on files
they did not write (generated, copied, half-edited): whatever the bytes, the only output
allowed is diagnostics (`[ALERT]`/`[WARNING]` naming file:line), never another exception.
The same text also goes through the crt-list parser and, word by word, the header-value
expression parser, whose only allowed exception is `SampleSyntaxError`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from staplegate.config.crtlist import parse_crt_list
from staplegate.config.diagnostics import Severity
from staplegate.config.parser.dispatch import parse_texts
from staplegate.config.samples import SampleSyntaxError, parse_header_format
from staplegate.config.semantic import build_config
from tests.fuzz_targets import Disagreement

NAME = "config_parser"
_DATA = Path(__file__).resolve().parents[1] / "data" / "configs"
_EXTRA_SEEDS = (
    b"frontend fe\n    bind 127.0.0.1:443 ssl crt a.pem verify required ca-file ca.pem "
    b"crl-file crl.pem ca-ignore-err all crt-ignore-err 10,X509_V_ERR_CERT_REVOKED\n"
    b"    http-request set-header X-CN %{+Q}[ssl_c_s_dn(CN,-1),lower]\n"
    b"    http-request deny if { ssl_c_used } !{ ssl_c_verify 0 }\n"
    b"    use_backend app if { ssl_fc_sni -i -m end .example.test }\n"
    b"    default_backend app\n"
    b'backend ""\n    server a 127.0.0.1:9000 check inter 2s\n',
    b"a.pem [verify optional ca-file ca.pem crl-file crl.pem alpn h2] *.a.test !b.a.test\n",
    b'global\n    setenv X "${Y}"\n    crt-base "${HOME}/x"\n',
)


def seeds() -> list[bytes]:
    found = [p.read_bytes() for p in sorted(_DATA.glob("*.cfg"))]
    found += [p.read_bytes() for p in sorted((_DATA / "crt-lists").glob("*"))]
    return [*found, *_EXTRA_SEEDS]


def run_one(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    lines = text.count("\n") + 1
    parsed = parse_texts([("fuzz.cfg", text)], env={"HOME": "/home/x"})
    _config, diagnostics = build_config(parsed)
    for diagnostic in diagnostics:
        if diagnostic.file == "fuzz.cfg" and not 0 <= diagnostic.line <= lines:
            raise Disagreement(f"diagnostic names line {diagnostic.line} of {lines}")
        if diagnostic.severity is Severity.ERROR and not str(diagnostic).startswith("[ALERT]"):
            raise Disagreement(f"an error that is not an [ALERT]: {diagnostic}")
    _crt_list, problems = parse_crt_list(
        text, path="fuzz.lst", crt_base="/c", key_base=None, ca_base="/ca"
    )
    for problem in problems:
        if not 0 <= problem.line <= lines:
            raise Disagreement(f"crt-list diagnostic names line {problem.line} of {lines}")
    for word in text.split()[:50]:
        with contextlib.suppress(SampleSyntaxError):
            parse_header_format(word)
