"""Read configuration files, crt-lists and certificate directories; the config package's only I/O.

`load_config()` mirrors `haproxy -f`: files are parsed in the order given, a directory
contributes its `*.cfg` files in lexical order. Relative paths inside the configuration are
left relative, like HAProxy (they resolve against the working directory when opened).
Certificate files themselves are not opened here; the certs package does that.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from staplegate.config.crtlist import parse_crt_list
from staplegate.config.diagnostics import (
    Diagnostic,
    DiagnosticSink,
    Reason,
    Severity,
    SourceLocation,
)
from staplegate.config.model import Bind, CertSource, CertSourceKind, Config
from staplegate.config.parser.dispatch import ConfigParser
from staplegate.config.parser.state import ParsedConfig, RawProxy
from staplegate.config.semantic import build_config

# HAProxy's "crt DIR" skips these: they are sidecars of the certificates beside them
SIDECAR_SUFFIXES = (".key", ".issuer", ".ocsp", ".sctl")


@dataclass(frozen=True)
class LoadResult:
    """The configuration (None when any error was found) and every diagnostic, in order."""

    config: Config | None
    diagnostics: tuple[Diagnostic, ...]

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity is Severity.WARNING)


def expand_config_paths(paths: Sequence[Path], sink: DiagnosticSink) -> list[Path]:
    """Files in the order HAProxy reads them: a directory gives its *.cfg files, sorted."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.name.endswith(".cfg") and p.is_file())
            files.extend(found)
        else:
            files.append(path)
    if not files:
        sink.error(SourceLocation("", 0), "", "No configuration file found.", Reason.IO)
    return files


def list_certificate_directory(path: str) -> tuple[str, ...]:
    """`crt DIR`: every regular file except sidecars and dot-files, sorted."""
    names = sorted(
        entry.name
        for entry in os.scandir(path)
        if not entry.name.startswith(".")
        and not entry.name.endswith(SIDECAR_SUFFIXES)
        and entry.is_file()
    )
    return tuple(f"{path.rstrip('/')}/{name}" for name in names)


def _resolve_source(
    source: CertSource, bind: Bind, parsed: ParsedConfig, sink: DiagnosticSink
) -> CertSource:
    if source.kind is CertSourceKind.STORE:
        return source
    if source.kind is CertSourceKind.CRT_LIST:
        try:
            text = Path(source.path).read_text(encoding="utf-8", errors="surrogateescape")
        except OSError as exc:
            sink.error(
                source.location,
                "crt-list",
                f"'{bind.name}' : 'crt-list' : cannot open file '{source.path}' : "
                f"{exc.strerror or exc}",
                Reason.IO,
            )
            return source
        crt_list, problems = parse_crt_list(
            text,
            path=source.path,
            crt_base=parsed.global_.crt_base,
            key_base=parsed.global_.key_base,
            ca_base=parsed.global_.ca_base,
        )
        sink.extend(problems)
        return replace(source, crt_list=crt_list)
    if os.path.isdir(source.path):
        try:
            files = list_certificate_directory(source.path)
        except OSError as exc:
            sink.error(
                source.location,
                "crt",
                f"'{bind.name}' : 'crt' : unable to scan directory '{source.path}' : "
                f"{exc.strerror or exc}",
                Reason.IO,
            )
            return source
        return replace(source, kind=CertSourceKind.DIRECTORY, directory_files=files)
    return source


def _resolve_proxy(proxy: RawProxy, parsed: ParsedConfig, sink: DiagnosticSink) -> RawProxy:
    binds = tuple(
        replace(
            bind,
            cert_sources=tuple(
                _resolve_source(source, bind, parsed, sink) for source in bind.cert_sources
            ),
        )
        for bind in proxy.binds
    )
    return replace(proxy, binds=binds)


def read_pattern_file(path: str) -> str:
    """An ACL pattern file (`-f FILE`), read while the configuration is parsed."""
    return Path(path).read_text(encoding="utf-8", errors="surrogateescape")


def load_config(paths: Sequence[Path], *, env: Mapping[str, str]) -> LoadResult:
    """Parse and check the configuration at `paths` (files or directories, in order)."""
    sink = DiagnosticSink()
    parser = ConfigParser(env=env, read_file=read_pattern_file)
    for path in expand_config_paths(paths, sink):
        try:
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError as exc:
            sink.error(
                SourceLocation(str(path), 0),
                "",
                f"Could not open configuration file {path} : {exc.strerror or exc}",
                Reason.IO,
            )
            continue
        parser.feed(text, file=str(path))
    parsed = parser.finish()
    resolved_sink = DiagnosticSink()
    proxies = tuple(_resolve_proxy(p, parsed, resolved_sink) for p in parsed.proxies)
    parsed = replace(
        parsed,
        proxies=proxies,
        diagnostics=sink.snapshot() + parsed.diagnostics + resolved_sink.snapshot(),
    )
    config, diagnostics = build_config(parsed)
    return LoadResult(config, diagnostics)
