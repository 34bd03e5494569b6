"""Read an nginx configuration for the certificates whose `ssl_stapling_file` the sidecar keeps.

Theory of operation. crossplane (nginx's own Python parser, the maintained `nginx-crossplane`
release) reads the main file and every `include` into one payload per file; we walk it
ourselves, following `include` by crossplane's indices, so every line we quote names the
file it is really in (crossplane's `combine` mode mislabels blocks that follow an include).
Syntax errors and missing includes are crossplane's messages, as `[ALERT]` lines naming
file:line; nothing here raises for bad input.

For each `server` of the `http` block we take nginx's rules:

- `ssl_certificate`, `ssl_stapling`, `ssl_stapling_file`, `ssl_stapling_responder`,
  `ssl_trusted_certificate` and `ssl_client_certificate` are inherited from `http` when the
  server does not set them (a server's own `ssl_certificate` lines replace all of http's);
- relative paths are relative to the directory of the main configuration file (nginx's
  configuration prefix with `-c`);
- the leaf is the first certificate of the `ssl_certificate` file, the rest is its chain;
  the issuer is the chain certificate that issued it, else one in `ssl_trusted_certificate`
  or `ssl_client_certificate` (the files nginx loads into the store it looks issuers up in);
- nginx staples the ONE `ssl_stapling_file` of a server for EVERY certificate of that server
  (ngx_event_openssl_stapling.c, since 1.11.0 loads it once per certificate, unchecked). So
  with an RSA and an ECDSA certificate in one server, the file can only be right for one: we
  keep it for the server's first `ssl_certificate` and list the others as skipped, with a
  warning (a client given another one would be handed a response for a different
  certificate). Put such certificates in their own server, or let nginx fetch for them.
- the private key is never read: the sidecar needs no access to it.

`Discovery.files` lists every configuration file and certificate file read (never the staple
files): the service re-reads when one changes, so a renewed certificate gets its own staple and
its file a placeholder at once, never the old certificate's answer.

A certificate is kept stapled when its server has `ssl_stapling on` and an `ssl_stapling_file`
and it has a responder (`ssl_stapling_responder`, else its AIA OCSP URI) and an issuer. A
server with `ssl_stapling on` and no file gets a `[WARNING]` saying which line to add; paths
with variables (`$ssl_server_name`), `data:` values and unreadable or broken certificates are
named too (unreadable or broken certificates as `[ALERT]`s). Two servers naming one
`ssl_stapling_file` for different certificates get the rule of one server with two: the
first keeps the file, the others are skipped with a `[WARNING]`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import crossplane  # type: ignore[import-untyped]
from cryptography import x509

from staplegate.certs.loader import issued_by, ocsp_uri
from staplegate.certs.pem import PemError, PemErrorKind, parse_pem
from staplegate.ocsp.certid import CertId
from staplegate.sidecar.targets import Discovery, SidecarCertificate, SkippedCertificate
from staplegate.updater.driver import UpdaterEntry

#: Server-level directives this reader uses, all inheritable from `http`.
_INHERITED = (
    "ssl_certificate",
    "ssl_stapling",
    "ssl_stapling_file",
    "ssl_stapling_responder",
    "ssl_trusted_certificate",
    "ssl_client_certificate",
)

#: Where the message for a server without ssl_stapling_file suggests to keep the files (not
#: the sidecar's state directory: that one is the sidecar's own, 0700).
SUGGESTED_DIRECTORY = "/var/lib/staplegate-nginx"

#: Most bytes read from an existing ssl_stapling_file (an OCSP response is a few KiB).
_MAX_STAPLE_FILE = 1 << 20


@dataclass(frozen=True)
class Directive:
    """One directive as crossplane gives it, with the file it is really written in."""

    name: str
    args: tuple[str, ...]
    file: str
    line: int
    block: tuple[Directive, ...] | None = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class NginxServer:
    """One `server` block with the TLS directives that apply to it (its own, else http's)."""

    where: str
    names: tuple[str, ...]
    settings: Mapping[str, tuple[Directive, ...]]

    def last(self, name: str) -> Directive | None:
        found = self.settings.get(name, ())
        return found[-1] if found else None

    @property
    def file_stem(self) -> str:
        """A file name for this server's staple: its first server_name, if it is a plain one."""
        first = self.names[0] if self.names else ""
        cleaned = first.lstrip("*.~").replace("*", "_")
        return cleaned if cleaned and all(c.isalnum() or c in ".-_" for c in cleaned) else "<name>"

    @property
    def label(self) -> str:
        """How messages name the server: its first server_name and where it starts."""
        first = self.names[0] if self.names and self.names[0] else "(no server_name)"
        return f"server {first!r} at {self.where}"


@dataclass
class _Reading:
    """What one discovery accumulates."""

    certificates: list[SidecarCertificate] = field(default_factory=list)
    skipped: list[SkippedCertificate] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    files: dict[str, None] = field(default_factory=dict)
    """Files the reading depended on, in order (a dict as an ordered set)."""
    pem: dict[Path, tuple[x509.Certificate, ...] | None] = field(default_factory=dict)
    """Certificate files already read (a trusted bundle shared by many servers is read once)."""

    def depends_on(self, path: Path | str) -> None:
        self.files[str(path)] = None

    def alert(self, where: str, message: str) -> None:
        self.errors.append(f"[ALERT] nginx : parsing [{where}] : {message}")

    def warning(self, where: str, message: str) -> None:
        self.messages.append(f"[WARNING] nginx : parsing [{where}] : {message}")

    def skip(self, name: str, where: str, uri: str | None, reason: str) -> None:
        self.skipped.append(SkippedCertificate(name=name, source=where, uri=uri, reason=reason))


def discover(paths: Sequence[str | Path]) -> Discovery:
    """Read nginx's configuration file(s) and find the certificates to keep stapled.

    Usually one path, nginx's main file (`/etc/nginx/nginx.conf`); never raises for bad input.
    """
    reading = _Reading()
    for path in paths:
        main = Path(path).absolute()
        tree = parse_tree(main, reading)
        if tree is None:
            continue
        for server in find_servers(tree):
            _read_server(server, main.parent, reading)
    _check_shared_files(reading)
    return Discovery(
        certificates=tuple(reading.certificates),
        messages=tuple(dict.fromkeys(reading.messages)),  # an http-level line: said once
        errors=tuple(dict.fromkeys(reading.errors)),
        skipped=tuple(reading.skipped),
        files=tuple(reading.files),
    )


# -- parsing ----------------------------------------------------------------------------------


def parse_tree(main: Path, reading: _Reading) -> tuple[Directive, ...] | None:
    """The main file's directives with includes inlined, or None after an `[ALERT]`."""
    reading.depends_on(main)
    if not main.is_file():
        reason = "no such file" if not main.exists() else "not a regular file"
        reading.errors.append(f"[ALERT] nginx : cannot read configuration file {main} : {reason}")
        return None
    try:
        payload: dict[str, Any] = crossplane.parse(str(main), catch_errors=True)
    except (OSError, ValueError, UnicodeDecodeError, RuntimeError) as exc:
        # crossplane catches what it knows; anything else still becomes one clear line.
        reading.errors.append(f"[ALERT] nginx : cannot read configuration file {main} : {exc}")
        return None
    errors_before = len(reading.errors)
    for error in payload.get("errors", []):
        file = str(error.get("file", main))
        line = error.get("line")
        where = f"{file}:{line}" if line is not None else file
        text = str(error.get("error", "unknown error"))
        suffix = f" in {where}"
        if text.endswith(suffix):
            text = text[: -len(suffix)]
        reading.alert(where, text)
    if len(reading.errors) > errors_before:
        return None
    configs: list[dict[str, Any]] = payload["config"]
    for config in configs:
        reading.depends_on(str(config["file"]))
    try:
        return _inline(configs, 0, seen=())
    except RecursionError:  # crossplane took it; blocks nested ~1,000 deep are not a config
        reading.errors.append(f"[ALERT] nginx : {main} : blocks nested too deeply")
        return None


def _inline(
    configs: list[dict[str, Any]], index: int, seen: tuple[int, ...]
) -> tuple[Directive, ...]:
    file = str(configs[index]["file"])
    return tuple(_directives(configs, configs[index]["parsed"], file, (*seen, index)))


def _directives(
    configs: list[dict[str, Any]], parsed: list[dict[str, Any]], file: str, seen: tuple[int, ...]
) -> Iterator[Directive]:
    for item in parsed:
        name = str(item["directive"])
        if name == "include" and "includes" in item:
            for included in item["includes"]:
                if included not in seen:  # nginx would loop; crossplane already refuses
                    yield from _inline(configs, included, seen)
            continue
        block = item.get("block")
        yield Directive(
            name=name,
            args=tuple(str(arg) for arg in item.get("args", [])),
            file=file,
            line=int(item.get("line", 0)),
            block=None if block is None else tuple(_directives(configs, block, file, seen)),
        )


def find_servers(tree: Sequence[Directive]) -> Iterator[NginxServer]:
    """Every `server` of every `http` block, with http-level TLS settings inherited."""
    for http in tree:
        if http.name != "http" or http.block is None:
            continue
        inherited = _settings_of(http.block)
        for server in http.block:
            if server.name != "server" or server.block is None:
                continue
            own = _settings_of(server.block)
            settings = {name: own.get(name) or inherited.get(name, ()) for name in _INHERITED}
            names = tuple(
                arg
                for directive in server.block
                if directive.name == "server_name"
                for arg in directive.args
            )
            yield NginxServer(where=server.where, names=names, settings=settings)


def _settings_of(block: Sequence[Directive]) -> dict[str, tuple[Directive, ...]]:
    found: dict[str, list[Directive]] = {}
    for directive in block:
        if directive.name in _INHERITED:
            found.setdefault(directive.name, []).append(directive)
    return {name: tuple(directives) for name, directives in found.items()}


# -- one server -------------------------------------------------------------------------------


def _read_server(server: NginxServer, prefix: Path, reading: _Reading) -> None:
    certificates = server.settings.get("ssl_certificate", ())
    if not certificates:
        return
    stapling = server.last("ssl_stapling")
    stapling_on = stapling is not None and stapling.args[:1] == ("on",)
    staple_file = server.last("ssl_stapling_file")
    responder = server.last("ssl_stapling_responder")

    if not stapling_on:
        reason = "ssl_stapling off"
        if staple_file is not None:
            reading.warning(
                staple_file.where,
                f"{server.label} names ssl_stapling_file but has no 'ssl_stapling on;': nginx "
                "ignores the file; add 'ssl_stapling on;' to this server.",
            )
            reason = "ssl_stapling off (add 'ssl_stapling on;')"
        for directive in certificates:
            reading.skip(_arg(directive), directive.where, None, reason)
        return
    if staple_file is None:
        assert stapling is not None
        reading.warning(
            stapling.where,
            f"{server.label} has 'ssl_stapling on' but no ssl_stapling_file, so nginx fetches "
            "staples itself and the sidecar cannot help: add "
            f"'ssl_stapling_file {SUGGESTED_DIRECTORY}/{server.file_stem}.ocsp;' after line "
            f"{stapling.line} of {stapling.file}.",
        )
        for directive in certificates:
            reading.skip(_arg(directive), directive.where, None, "no ssl_stapling_file")
        return
    file_path = _path_arg(staple_file, prefix, reading)
    if file_path is None:
        for directive in certificates:
            reading.skip(_arg(directive), directive.where, None, "ssl_stapling_file unusable")
        return

    issuers_from = [
        source
        for name in ("ssl_trusted_certificate", "ssl_client_certificate")
        if (source := server.last(name)) is not None
    ]
    first, *others = certificates
    _read_certificate(server, first, file_path, responder, issuers_from, prefix, reading)
    for directive in others:
        reading.warning(
            directive.where,
            f"{server.label} has several certificates but nginx staples its one "
            f"ssl_stapling_file ({file_path}) for all of them: the file carries the staple of "
            f"the first ({_arg(first)}, line {first.line}); a client given this one would "
            "receive a response for another certificate. Move it to its own server, or drop "
            "ssl_stapling_file here and let nginx fetch.",
        )
        reading.skip(
            _arg(directive),
            directive.where,
            None,
            f"shares ssl_stapling_file with {_arg(first)} (nginx: one file per server)",
        )


def _read_certificate(
    server: NginxServer,
    directive: Directive,
    staple_file: Path,
    responder: Directive | None,
    issuers_from: Sequence[Directive],
    prefix: Path,
    reading: _Reading,
) -> None:
    name = _arg(directive)
    crt_path = _path_arg(directive, prefix, reading)
    if crt_path is None:
        reading.skip(name, directive.where, None, "path not usable by the sidecar")
        return
    chain = _read_certificates(crt_path, directive.where, "ssl_certificate", reading)
    if chain is None:
        reading.skip(name, directive.where, None, "certificate file unreadable")
        return
    leaf, rest = chain[0], chain[1:]
    uri = _arg(responder) if responder is not None else ocsp_uri(leaf)
    if uri is None:
        reading.skip(str(crt_path), directive.where, None, "no OCSP URI")
        return
    issuer = next((candidate for candidate in rest if issued_by(leaf, candidate)), None)
    for source in issuers_from if issuer is None else ():
        source_path = _path_arg(source, prefix, reading)
        if source_path is None:
            continue
        bundle = _read_certificates(source_path, source.where, source.name, reading)
        issuer = next((c for c in bundle or () if issued_by(leaf, c)), None)
        if issuer is not None:
            break
    if issuer is None:
        reading.warning(
            directive.where,
            f"no issuer found for {crt_path} ({server.label}): put the intermediate after the "
            "certificate in this file, or name a file holding it with ssl_trusted_certificate.",
        )
        reading.skip(str(crt_path), directive.where, uri, "no issuer found")
        return
    reading.certificates.append(
        SidecarCertificate(
            entry=UpdaterEntry(
                certificate=leaf,
                issuer=issuer,
                path=str(crt_path),
                uri=uri,
                auto_update=True,
                sidecar_ocsp=_current_staple(staple_file),
            ),
            cert_id=CertId.for_certificate(leaf, issuer),
            source=directive.where,
            ocsp_file=staple_file,
        )
    )


def _read_certificates(
    path: Path, where: str, keyword: str, reading: _Reading
) -> tuple[x509.Certificate, ...] | None:
    """The certificates of a PEM file in order, or None after an `[ALERT]` (said once)."""
    if path not in reading.pem:
        reading.pem[path] = _read_pem_file(path, where, keyword, reading)
    return reading.pem[path]


def _read_pem_file(
    path: Path, where: str, keyword: str, reading: _Reading
) -> tuple[x509.Certificate, ...] | None:
    reading.depends_on(path)  # even when unreadable: its appearance is a change too
    try:
        data = path.read_bytes()
    except OSError as exc:
        reading.alert(
            where,
            f"cannot read {keyword} file '{path}': {exc.strerror or exc}; make it readable by "
            "the sidecar's user (it needs the certificates, never the keys).",
        )
        return None
    try:
        certificates = parse_pem(data).certificates
    except PemError as exc:
        if exc.kind in (PemErrorKind.ENCRYPTED_KEY, PemErrorKind.BAD_KEY):
            certificates = _certificates_only(data)  # the key is nginx's business, not ours
        else:
            reading.alert(where, f"{keyword} file '{path}': {exc.detail}.")
            return None
    if not certificates:
        reading.alert(where, f"{keyword} file '{path}' holds no PEM certificate.")
        return None
    return certificates


def _certificates_only(data: bytes) -> tuple[x509.Certificate, ...]:
    """The certificates of a bundle that also holds an encrypted key (which we never need)."""
    try:
        return tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        return ()


def _current_staple(path: Path) -> bytes | None:
    """What the ssl_stapling_file holds now (the updater verifies it before any use)."""
    try:
        with path.open("rb") as stream:
            data = stream.read(_MAX_STAPLE_FILE)
    except OSError:
        return None
    return data or None


def _arg(directive: Directive) -> str:
    return directive.args[0] if directive.args else ""


def _path_arg(directive: Directive, prefix: Path, reading: _Reading) -> Path | None:
    """The directive's file argument as nginx resolves it, or None after a `[WARNING]`."""
    value = _arg(directive)
    if "$" in value:
        reading.warning(
            directive.where,
            f"{directive.name} '{value}' holds a variable: nginx resolves it per handshake and "
            "never staples such certificates; the sidecar skips it. Name the file itself to "
            "have it stapled.",
        )
        return None
    if value.startswith(("data:", "engine:", "store:")):
        reading.warning(
            directive.where,
            f"{directive.name} '{value.split(':', 1)[0]}:...' is not a file; the sidecar skips it.",
        )
        return None
    path = Path(value)
    return path if path.is_absolute() else Path(os.path.normpath(prefix / path))


def _check_shared_files(reading: _Reading) -> None:
    """One ssl_stapling_file named for different certificates: the first keeps it.

    nginx would staple that one file for all of them, so it can be right for one only; the
    others are skipped with a warning (the same certificate in several servers is fine).
    """
    owners: dict[Path, SidecarCertificate] = {}
    kept: list[SidecarCertificate] = []
    for certificate in reading.certificates:
        assert certificate.ocsp_file is not None
        first = owners.setdefault(certificate.ocsp_file, certificate)
        if first.cert_id == certificate.cert_id:
            kept.append(certificate)
            continue
        reading.warning(
            certificate.source,
            f"ssl_stapling_file {certificate.ocsp_file} is also the file of "
            f"{first.entry.path} ({first.source}), a different certificate: nginx would "
            "staple that one answer for both, so it carries the first one's; give each server "
            "its own file to have this certificate stapled.",
        )
        reading.skip(
            certificate.entry.path,
            certificate.source,
            certificate.entry.uri,
            f"shares ssl_stapling_file {certificate.ocsp_file} with {first.entry.path}",
        )
    reading.certificates[:] = kept
