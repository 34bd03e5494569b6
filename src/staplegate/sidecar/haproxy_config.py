"""Read any HAProxy configuration for its certificates only: what the sidecar must keep stapled.

Theory of operation. HAProxy's own parser (and staplegate's, which refuses what it cannot do on
the wire) judge every keyword; the sidecar must not: it runs beside a HAProxy that already
accepted the file. So this reader looks at a handful of lines and skips everything else
without judgement:

- `global`: `crt-base`, `key-base`, `ssl-load-extra-files`, `ssl-load-extra-del-ext`, the OCSP
  settings (`ocsp-update.*`, `tune.ssl.ocsp-update.*`, `httpclient.retries`,
  `httpclient.timeout.connect`) and `stats socket` (to find HAProxy's runtime API). The OCSP
  settings go through staplegate's own global-section parser (the other lines blanked, so its
  messages keep their file:line), which is where `ocsp-update.mode` & co. are defined once.
- `crt-store [<name>]` sections: `crt-base`, `key-base`, `load crt … [key|ocsp|issuer|alias|
  ocsp-update]`.
- `bind` lines in any section: every `crt <file|dir|@store/name>` and `crt-list <file>`; crt-list
  lines give `<crt> [options] [filters]`, of whose options only `key`, `ocsp`, `issuer` and
  `ocsp-update` matter (the others are skipped whatever they are).

Each certificate file is read for its certificates only (the first is the leaf; never the
private key, which the sidecar has no use for), then its issuer: a chain certificate that
issued it, else `<base>.issuer`, else the `issuer` file. Whether HAProxy would update it
follows HAProxy 3.x's rule (the line's `ocsp-update`, else the global `ocsp-update.mode`;
`ocsp-update.disable on` turns all off); `--all` (`update_all`) updates every certificate
that has an OCSP URI and an issuer — what HAProxy before 2.8, which has no updater, needs.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography import x509

from staplegate.certs.loader import expand_bundle, issued_by, ocsp_uris
from staplegate.certs.source import CertificateSource, ExtraFiles, Sidecar, sidecar_path
from staplegate.config.crtlist import join_base, parse_ocsp_update
from staplegate.config.diagnostics import DiagnosticSink, Severity
from staplegate.config.lexer import Line, lex
from staplegate.config.loader import SIDECAR_SUFFIXES, expand_config_paths
from staplegate.config.model import CrlWatchMode, GlobalSettings
from staplegate.config.parser.dispatch import parse_texts
from staplegate.ocsp.certid import CertId
from staplegate.sidecar.targets import Discovery, SidecarCertificate, SkippedCertificate
from staplegate.updater.crl_watch import CrlTarget, watched_url
from staplegate.updater.driver import UpdaterEntry

#: Words that open a section in HAProxy 2.x/3.x (anything else belongs to the current one).
SECTION_KEYWORDS = frozenset(
    {
        "global",
        "defaults",
        "frontend",
        "backend",
        "listen",
        "crt-store",
        "peers",
        "resolvers",
        "userlist",
        "mailers",
        "program",
        "http-errors",
        "ring",
        "cache",
        "log-forward",
        "fcgi-app",
        "traces",
        "acme",
        "namespace_list",
        "log-profile",
        "dynamic-update",
        "quic-initial",
    }
)

#: `global` lines handed to staplegate's own parser: the OCSP engine's settings.
_OCSP_GLOBAL_PREFIXES = ("ocsp-update.", "tune.ssl.ocsp-update.")
_OCSP_GLOBAL_WORDS = frozenset({"httpclient.retries", "httpclient.timeout.connect"})

#: Larger than any configuration, crt-list, certificate bundle or staple: a file named by
#: mistake (`/dev/zero`, a log) is refused instead of read to the end.
MAX_FILE_BYTES = 16 * 1024 * 1024

#: crt-list options that take no value (HAProxy's ssl bind options allowed on a crt-list line).
_CRT_LIST_FLAGS = frozenset({"allow-0rtt", "no-ca-names", "no-alpn", "ssl"})


@dataclass(frozen=True)
class StatsSocketLine:
    """A `stats socket` line: where HAProxy's runtime API listens, and at which level."""

    address: str
    level: str
    source: str


@dataclass(frozen=True)
class HaproxyDiscovery:
    """What the sidecar found in a HAProxy configuration."""

    discovery: Discovery
    stats_sockets: tuple[StatsSocketLine, ...] = ()

    @property
    def push_socket(self) -> StatsSocketLine | None:
        """The default push target: the first `stats socket` of level admin, else the first
        one (HAProxy 2.6 takes `set ssl ocsp-response` at every level, even `user`)."""
        admin = next((s for s in self.stats_sockets if s.level == "admin"), None)
        return admin or next(iter(self.stats_sockets), None)


@dataclass(frozen=True)
class _Reference:
    """One certificate as a bind line, crt-list line or crt-store names it."""

    name: str
    crt_path: str
    source: str
    key_path: str | None = None
    ocsp_path: str | None = None
    issuer_path: str | None = None
    ocsp_update: bool | None = None
    discover_sidecars: bool = True


@dataclass
class _Reading:
    """The state of one pass over the configuration files."""

    env: Mapping[str, str]
    update_all: bool
    errors: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    crt_base: str | None = None
    key_base: str | None = None
    extra_words: tuple[str, ...] | None = None
    del_ext: bool = False
    stores: dict[str, _Reference] = field(default_factory=dict)
    references: list[_Reference] = field(default_factory=list)
    sockets: list[StatsSocketLine] = field(default_factory=list)
    global_texts: list[tuple[str, str]] = field(default_factory=list)
    files: dict[str, None] = field(default_factory=dict)  # read, in order, once each
    crl_targets: dict[str, CrlTarget] = field(default_factory=dict)
    # the crt-store section being read: name, crt-base, key-base
    store_name: str | None = None
    store_crt_base: str | None = None
    store_key_base: str | None = None

    def alert(self, where: str, message: str) -> None:
        self.errors.append(f"[ALERT] config : parsing [{where}] : {message}")

    def warn(self, where: str, message: str) -> None:
        self.messages.append(f"[WARNING] config : parsing [{where}] : {message}")


def read_haproxy_config(
    paths: Sequence[str],
    *,
    env: Mapping[str, str],
    update_all: bool = False,
    extra_config: Sequence[str] = (),
) -> HaproxyDiscovery:
    """Read the configuration at `paths` (files or directories) for its certificates.

    `extra_config` files (`--extra-config`, staplegate's syntax) add OCSP settings HAProxy's
    file cannot carry (`ocsp-update.maxconn`, `rate-limit`, or a `maxdelay` HAProxy 2.6 does
    not know): their `global` OCSP lines are read after HAProxy's, so they win.

    Never raises for bad input: unreadable files and certificates are `[ALERT]` lines in
    `discovery.errors`, everything doubtful a `[WARNING]` in `discovery.messages`.
    """
    reading = _Reading(env=env, update_all=update_all)
    sink = DiagnosticSink()
    for path in expand_config_paths([Path(p) for p in paths], sink):
        reading.files[str(path)] = None
        try:
            text = _read_text(path)
        except OSError as exc:
            reading.errors.append(
                f"[ALERT] config : Could not open configuration file {path} : {exc.strerror or exc}"
            )
            continue
        _read_file(reading, str(path), text)
    for extra_path in extra_config:
        _read_extra_config(reading, extra_path)
    for diagnostic in sink.snapshot():
        reading.errors.append(str(diagnostic))
    settings = _ocsp_settings(reading)
    extra = _extra_files(reading)
    certificates, skipped = _load_all(reading, settings, extra)
    discovery = Discovery(
        certificates=tuple(certificates),
        messages=tuple(reading.messages),
        errors=tuple(reading.errors),
        skipped=tuple(skipped),
        settings=settings,
        files=tuple(reading.files),
        crl_targets=tuple(reading.crl_targets.values()),
    )
    return HaproxyDiscovery(discovery, tuple(reading.sockets))


def read_extra_settings(extra_config: Sequence[str], *, env: Mapping[str, str]) -> Discovery:
    """`--extra-config` alone (for the nginx sidecar): a Discovery with no certificates whose
    `settings`, `messages` and `errors` come from the files' `global` OCSP lines."""
    reading = _Reading(env=env, update_all=False)
    for extra_path in extra_config:
        _read_extra_config(reading, extra_path)
    settings = _ocsp_settings(reading)
    return Discovery(
        certificates=(),
        messages=tuple(reading.messages),
        errors=tuple(reading.errors),
        settings=settings,
    )


# -- the configuration files ----------------------------------------------------------------


def _read_file(reading: _Reading, file: str, text: str) -> None:
    result = lex(text, file=file, env=reading.env)
    for diagnostic in result.diagnostics:
        # a line HAProxy's lexer takes and ours does not is not the sidecar's business
        reading.warn(f"{file}:{diagnostic.line}", f"{diagnostic.message}; line skipped")
    raw_lines = text.split("\n")
    kept: set[int] = set()
    section = ""
    conditional_said = False
    for line in result.lines:
        head = line.args[0]
        if head in (".if", ".elif", ".else") and not conditional_said:
            conditional_said = True
            reading.warn(
                f"{file}:{line.number}",
                "conditional blocks (.if/.elif/.else) are not evaluated by the sidecar: the "
                "certificates of every branch are read",
            )
            continue
        if head in SECTION_KEYWORDS:
            section = head
            if head == "global":
                kept.add(line.number)
            elif head == "crt-store":
                reading.store_name = line.args[1] if len(line.args) > 1 else None
                reading.store_crt_base = reading.store_key_base = None
            continue
        if section == "global":
            if _read_global_line(reading, line):
                kept.add(line.number)
        elif section == "crt-store":
            _read_store_line(reading, line)
        elif head == "bind":
            _read_bind(reading, line)
    if kept:
        filtered = [raw if n in kept else "" for n, raw in enumerate(raw_lines, start=1)]
        reading.global_texts.append((file, "\n".join(filtered)))


def _read_extra_config(reading: _Reading, file: str) -> None:
    """`--extra-config`: the `global` section's OCSP lines; anything else is said and skipped."""
    try:
        text = _read_text(Path(file))
    except OSError as exc:
        reading.errors.append(
            f"[ALERT] config : Could not open --extra-config file {file} : {exc.strerror or exc}"
        )
        return
    result = lex(text, file=file, env=reading.env)
    for diagnostic in result.diagnostics:
        reading.errors.append(str(diagnostic))
    kept: set[int] = set()
    section = ""
    for line in result.lines:
        head = line.args[0]
        where = f"{file}:{line.number}"
        if head in SECTION_KEYWORDS:
            section = head
            if head == "global":
                kept.add(line.number)
            else:
                reading.warn(where, f"--extra-config: only 'global' is read here; '{head}' skipped")
        elif section != "global":
            continue
        elif head == "ocsp-update.must-staple-wait":
            reading.warn(where, "the sidecar serves no TLS: 'ocsp-update.must-staple-wait' skipped")
        elif head.startswith(_OCSP_GLOBAL_PREFIXES) or head in _OCSP_GLOBAL_WORDS:
            kept.add(line.number)
        else:
            reading.warn(
                where,
                f"--extra-config: only OCSP settings are read from 'global'; '{head}' skipped",
            )
    if kept:
        raw_lines = text.split("\n")
        filtered = [raw if n in kept else "" for n, raw in enumerate(raw_lines, start=1)]
        reading.global_texts.append((file, "\n".join(filtered)))


def _read_global_line(reading: _Reading, line: Line) -> bool:
    """Note what the sidecar needs from one `global` line; True to hand it to the parser."""
    args = line.args
    head = args[0]
    where = f"{line.file}:{line.number}"
    if head in ("crt-base", "key-base") and len(args) > 1:
        if head == "crt-base":
            reading.crt_base = args[1]
        else:
            reading.key_base = args[1]
    elif head == "ssl-load-extra-files":
        reading.extra_words = args[1:]
    elif head == "ssl-load-extra-del-ext":
        reading.del_ext = True
    elif head == "stats" and len(args) > 2 and args[1] == "socket":
        level = "operator"
        if "level" in args[3:]:
            index = args.index("level", 3)
            level = args[index + 1] if index + 1 < len(args) else level
        reading.sockets.append(StatsSocketLine(args[2], level, where))
    return head.startswith(_OCSP_GLOBAL_PREFIXES) or head in _OCSP_GLOBAL_WORDS


def _read_store_line(reading: _Reading, line: Line) -> None:
    args = line.args
    head = args[0]
    where = f"{line.file}:{line.number}"
    if head in ("crt-base", "key-base") and len(args) > 1:
        if head == "crt-base":
            reading.store_crt_base = args[1]
        else:
            reading.store_key_base = args[1]
        return
    if head != "load":
        return
    values: dict[str, str] = {}
    for index in range(1, len(args) - 1, 2):
        values[args[index]] = args[index + 1]
    if "crt" not in values:
        reading.warn(where, "'load' without 'crt': no certificate to staple here")
        return
    crt_base = reading.store_crt_base if reading.store_crt_base is not None else reading.crt_base
    key_base = reading.store_key_base if reading.store_key_base is not None else reading.key_base
    crt = values["crt"]
    alias = values.get("alias")
    crt_path = join_base(crt_base, crt)
    short = alias if alias is not None else crt
    if reading.store_name is None:
        name = f"@/{short}" if alias is not None else crt_path
    else:
        name = f"@{reading.store_name}/{short}"
    reading.stores[name] = _Reference(
        name=name,
        crt_path=crt_path,
        source=where,
        key_path=join_base(key_base, values["key"]) if "key" in values else None,
        ocsp_path=join_base(crt_base, values["ocsp"]) if "ocsp" in values else None,
        issuer_path=join_base(crt_base, values["issuer"]) if "issuer" in values else None,
        ocsp_update=_ocsp_update_value(reading, values.get("ocsp-update"), where),
        discover_sidecars=False,
    )


def _ocsp_update_value(reading: _Reading, value: str | None, where: str) -> bool | None:
    if value is None:
        return None
    flag = parse_ocsp_update(value)
    if flag is None:
        reading.warn(where, f"'ocsp-update {value}': 'on' or 'off' is expected; ignored")
    return flag


def _read_bind(reading: _Reading, line: Line) -> None:
    args = line.args
    where = f"{line.file}:{line.number}"
    for index, word in enumerate(args[:-1]):
        value = args[index + 1]
        if word == "crt":
            _bind_crt(reading, value, where)
        elif word == "crt-list":
            _read_crt_list(reading, value, where)


def _bind_crt(reading: _Reading, value: str, where: str) -> None:
    if value.startswith("@"):
        reading.references.append(_Reference(name=value, crt_path=value, source=where))
        return
    path = join_base(reading.crt_base, value)
    if os.path.isdir(path):
        reading.files[path] = None  # a certificate added or removed changes its mtime
        try:
            names = sorted(
                entry.name
                for entry in os.scandir(path)
                if not entry.name.startswith(".")
                and not entry.name.endswith(SIDECAR_SUFFIXES)
                and entry.is_file()
            )
        except OSError as exc:
            reading.alert(where, f"'crt' : unable to scan directory '{path}' : {exc.strerror}")
            return
        for name in names:
            file = f"{path.rstrip('/')}/{name}"
            reading.references.append(_Reference(name=file, crt_path=file, source=where))
        return
    reading.references.append(_Reference(name=path, crt_path=path, source=where))


def _read_crt_list(reading: _Reading, list_path: str, where: str) -> None:
    reading.files[list_path] = None
    try:
        text = _read_text(Path(list_path))
    except OSError as exc:
        reading.alert(where, f"'crt-list' : cannot open file '{list_path}' : {exc.strerror}")
        return
    result = lex(text, file=list_path, env={})
    for diagnostic in result.diagnostics:
        reading.warn(f"{list_path}:{diagnostic.line}", f"{diagnostic.message}; line skipped")
    for line in result.lines:
        reference = _crt_list_line(reading, list(line.args), f"{list_path}:{line.number}")
        if reference is not None:
            reading.references.append(reference)


def _crt_list_line(reading: _Reading, args: list[str], where: str) -> _Reference | None:
    """`<crt> [<options>] [<sni filters>]`: the certificate and the options the sidecar uses."""
    crt = args[0]
    if crt.startswith("["):
        reading.warn(where, "crt-list line without a certificate; skipped")
        return None
    options: list[str] = []
    rest = args[1:]
    if rest and rest[0].startswith("["):
        joined = " ".join(rest)
        end = joined.find("]")
        if end < 0:
            reading.warn(where, "missing ']' at the end of the option block; options skipped")
        else:
            options = joined[1:end].split()
    values: dict[str, str] = {}
    index = 0
    while index < len(options):
        word = options[index]
        if word in _CRT_LIST_FLAGS or index + 1 >= len(options):
            index += 1
            continue
        values[word] = options[index + 1]
        index += 2
    if crt.startswith("@"):
        return _Reference(
            name=crt,
            crt_path=crt,
            source=where,
            ocsp_update=_ocsp_update_value(reading, values.get("ocsp-update"), where),
        )
    explicit = any(k in values for k in ("key", "ocsp", "issuer", "sctl"))
    path = join_base(reading.crt_base, crt)
    return _Reference(
        name=path,
        crt_path=path,
        source=where,
        key_path=join_base(reading.key_base, values["key"]) if "key" in values else None,
        ocsp_path=join_base(reading.crt_base, values["ocsp"]) if "ocsp" in values else None,
        issuer_path=join_base(reading.crt_base, values["issuer"]) if "issuer" in values else None,
        ocsp_update=_ocsp_update_value(reading, values.get("ocsp-update"), where),
        discover_sidecars=not explicit,
    )


# -- settings -------------------------------------------------------------------------------


def _ocsp_settings(reading: _Reading) -> GlobalSettings:
    """The global OCSP settings, read by staplegate's parser from the kept lines only."""
    if not reading.global_texts:
        return GlobalSettings()
    parsed = parse_texts(reading.global_texts, env=reading.env)
    for diagnostic in parsed.diagnostics:
        if diagnostic.severity is Severity.ERROR:
            reading.errors.append(str(diagnostic))
        elif diagnostic.severity is Severity.WARNING:
            reading.messages.append(str(diagnostic))
    return parsed.global_


def _extra_files(reading: _Reading) -> ExtraFiles:
    if reading.extra_words is None:
        return ExtraFiles(del_ext=reading.del_ext)
    try:
        return ExtraFiles.parse(reading.extra_words, reading.del_ext)
    except ValueError as exc:
        reading.messages.append(f"[WARNING] config : {exc} Using HAProxy's default (all).")
        return ExtraFiles(del_ext=reading.del_ext)


# -- the certificates -----------------------------------------------------------------------


def _load_all(
    reading: _Reading, settings: GlobalSettings, extra: ExtraFiles
) -> tuple[list[SidecarCertificate], list[SkippedCertificate]]:
    certificates: list[SidecarCertificate] = []
    skipped: list[SkippedCertificate] = []
    seen: set[tuple[str, str]] = set()
    for reference in reading.references:
        resolved = _resolve(reading, reference)
        if resolved is None:
            continue
        for member in _members(resolved, extra):
            key = (member.name, member.source)
            if key in seen:
                continue
            seen.add(key)
            found = _load_one(reading, member, settings, extra)
            if isinstance(found, SidecarCertificate):
                certificates.append(found)
            elif found is not None:
                skipped.append(found)
    return certificates, skipped


def _resolve(reading: _Reading, reference: _Reference) -> _Reference | None:
    """A reference to a crt-store entry becomes that entry (its files and `ocsp-update`)."""
    stored = reading.stores.get(reference.name)
    if stored is None:
        if reference.name.startswith("@"):
            reading.alert(
                reference.source,
                f"'{reference.name}' : no crt-store 'load' line declares this certificate",
            )
            return None
        return reference
    ocsp_update = reference.ocsp_update if reference.ocsp_update is not None else None
    return replace(
        stored,
        source=reference.source,
        ocsp_update=stored.ocsp_update if ocsp_update is None else ocsp_update,
    )


def _members(reference: _Reference, extra: ExtraFiles) -> list[_Reference]:
    """The certificates one path names: itself, or HAProxy's `.rsa`/`.ecdsa`/`.dsa` bundle."""
    if "\0" in reference.crt_path:
        return [reference]  # no such file: loading it says so
    source = CertificateSource(
        name=reference.name,
        crt_path=Path(reference.crt_path),
        discover_sidecars=reference.discover_sidecars,
    )
    members = expand_bundle(source, extra)
    return [
        replace(reference, name=member.name, crt_path=str(member.crt_path)) for member in members
    ]


def _load_one(
    reading: _Reading, reference: _Reference, settings: GlobalSettings, extra: ExtraFiles
) -> SidecarCertificate | SkippedCertificate | None:
    crt_path = Path(reference.crt_path)
    where = reference.source
    reading.files[str(crt_path)] = None
    try:
        data = _read_bytes(crt_path)
    except OSError as exc:
        hint = ""
        if exc.errno in (errno.EACCES, errno.EPERM):
            hint = " (the sidecar needs read access to the certificate files, not to their keys)"
        reading.alert(
            where, f"'{crt_path}' : unable to load the certificate: {exc.strerror or exc}{hint}"
        )
        return None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        reading.alert(where, f"'{crt_path}' : no PEM certificate found in the file")
        return None
    leaf, chain = certificates[0], certificates[1:]
    # `ocsp-update.responder-url` (--extra-config: an internal mirror) replaces the AIA's
    # URLs and covers certificates without one; otherwise the AIA's others are fallbacks
    aia = ocsp_uris(leaf)
    override = settings.ocsp_update_responder_url
    uri = override or (aia[0] if aia else None)
    fallback_uris = () if override else aia[1:]
    updates = _updates(reference, settings, reading.update_all)
    _watch_crl(reading, reference, settings, leaf, chain, extra, has_ocsp=bool(aia))
    if uri is None:
        return SkippedCertificate(reference.name, where, None, "no OCSP URI")
    if not updates:
        reason = "ocsp-update off" + ("" if settings.ocsp_update_mode else "; use --all")
        return SkippedCertificate(reference.name, where, uri, reason)
    issuer = next((c for c in chain if issued_by(leaf, c)), None)
    if issuer is None:
        issuer = _issuer_file(reading, reference, leaf, extra)
    if issuer is None:
        reading.warn(
            where,
            f"'{reference.name}' : no issuer found: put the issuing CA certificate after the "
            "leaf, in a '.issuer' file next to it, or name it with 'issuer'; not stapled",
        )
        return SkippedCertificate(reference.name, where, uri, "no issuer found")
    ocsp_file = _ocsp_file(reference, extra)
    sidecar_ocsp = None
    if ocsp_file is not None:
        try:
            sidecar_ocsp = _read_bytes(ocsp_file)
        except FileNotFoundError:
            pass
        except OSError as exc:
            reading.warn(where, f"'{ocsp_file}' : cannot be read ({exc.strerror}); ignored")
    entry = UpdaterEntry(
        certificate=leaf,
        issuer=issuer,
        path=reference.name,
        uri=uri,
        auto_update=True,
        sidecar_ocsp=sidecar_ocsp,
        fallback_uris=fallback_uris,
    )
    return SidecarCertificate(
        entry=entry,
        cert_id=CertId.for_certificate(leaf, issuer),
        source=where,
        ocsp_file=ocsp_file,
    )


def _watch_crl(
    reading: _Reading,
    reference: _Reference,
    settings: GlobalSettings,
    leaf: x509.Certificate,
    chain: Sequence[x509.Certificate],
    extra: ExtraFiles,
    *,
    has_ocsp: bool,
) -> None:
    """Note the certificate for the CRL watch, by `ocsp-update.crl-watch`'s rule (as the main
    command: `no-ocsp-only`, the default, takes those without an OCSP URL in their AIA)."""
    mode = settings.ocsp_update_crl_watch
    if mode is CrlWatchMode.OFF or watched_url(leaf) is None:
        return
    if mode is CrlWatchMode.NO_OCSP_ONLY and has_ocsp:
        return
    if reference.name in reading.crl_targets:
        return
    issuer = next((c for c in chain if issued_by(leaf, c)), None)
    issuer = issuer or _issuer_file(reading, reference, leaf, extra)
    if issuer is not None:
        reading.crl_targets[reference.name] = CrlTarget(reference.name, leaf, issuer)


def _updates(reference: _Reference, settings: GlobalSettings, update_all: bool) -> bool:
    """HAProxy 3.x's rule: the line's `ocsp-update`, else `ocsp-update.mode`; `--all` wins."""
    if update_all:
        return True
    if settings.ocsp_update_disable:
        return False
    if reference.ocsp_update is not None:
        return reference.ocsp_update
    return settings.ocsp_update_mode


def _issuer_file(
    reading: _Reading, reference: _Reference, leaf: x509.Certificate, extra: ExtraFiles
) -> x509.Certificate | None:
    candidates: list[Path] = []
    crt_path = Path(reference.crt_path)
    if reference.discover_sidecars and extra.reads(Sidecar.ISSUER):
        candidates.append(sidecar_path(crt_path, Sidecar.ISSUER, extra))
    if reference.issuer_path is not None:
        candidates.append(Path(reference.issuer_path))
    for path in candidates:
        reading.files[str(path)] = None  # watched even while absent: it may appear
        try:
            found = x509.load_pem_x509_certificates(_read_bytes(path))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "no PEM certificate in it"
            reading.warn(reference.source, f"'{path}' : cannot be read ({reason}); ignored")
            continue
        if issued_by(leaf, found[0]):
            return found[0]
        reading.warn(reference.source, f"'{path}' : did not issue '{reference.name}'; ignored")
    return None


def _read_bytes(path: Path) -> bytes:
    """The file's bytes; OSError (EFBIG) past MAX_FILE_BYTES, whatever the file is."""
    if "\0" in str(path):  # no file system path holds one (open() would raise ValueError)
        raise OSError(errno.EINVAL, "a NUL character in the path", str(path).replace("\0", "\\0"))
    with path.open("rb") as stream:
        data = stream.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise OSError(errno.EFBIG, f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB", str(path))
    return data


def _read_text(path: Path) -> str:
    return _read_bytes(path).decode("utf-8", errors="surrogateescape")


def _ocsp_file(reference: _Reference, extra: ExtraFiles) -> Path | None:
    """The `.ocsp` file HAProxy reads at start for this certificate, if it reads one."""
    if reference.ocsp_path is not None:
        return Path(reference.ocsp_path)
    if reference.discover_sidecars and extra.reads(Sidecar.OCSP):
        return sidecar_path(Path(reference.crt_path), Sidecar.OCSP, extra)
    return None
