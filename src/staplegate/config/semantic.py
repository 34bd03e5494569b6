"""Cross-checks that need the whole configuration, and the final immutable `Config`.

Theory of operation: `build_config()` takes a `ParsedConfig` whose bind certificate sources
were already resolved by the loader (directories listed, crt-lists read). It then:

1. merges each proxy with the defaults it inherits and folds `listen` into a frontend and a
   backend of the same name;
2. checks names (duplicate proxies with overlapping capabilities, duplicate servers), the
   backends named by `default_backend`/`use_backend`, binds (a frontend without one, `ssl`
   without a certificate);
3. walks every certificate use in configuration order — crt-store `load` lines where they
   are, bind `crt` / directory / crt-list lines at their bind — applying HAProxy 3.0+'s
   "certificate-store keyword" consistency rules (a store used twice must be described the
   same way each time; docs/reference/configuration.md) to each store name and
   producing one `CertificateReference` per use.

It is pure: no file is opened here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

from staplegate.config.diagnostics import (
    Diagnostic,
    DiagnosticSink,
    Reason,
    Severity,
    SourceLocation,
)
from staplegate.config.model import (
    Backend,
    Balance,
    Bind,
    CertificateReference,
    CertOrigin,
    CertSource,
    CertSourceKind,
    Config,
    CrtListEntry,
    CrtStoreLoad,
    ErrorFile,
    Frontend,
    GlobalSettings,
    Mode,
    ProxyKind,
    ProxyOptions,
    ProxySettings,
    Server,
    ServerOptions,
    Timeouts,
)
from staplegate.config.parser.state import ParsedConfig, RawProxy, RawServer
from staplegate.config.samples import SampleSyntaxError, parse_header_format

_FIELDS = ("key", "ocsp", "issuer", "sctl")


def _merge(base: object, override: object) -> object:
    """Field-wise overlay of two dataclass instances of the same type (None = unset)."""
    merged = base
    for item in fields(override):  # type: ignore[arg-type]
        value = getattr(override, item.name)
        if value is not None and value != ():
            merged = replace(merged, **{item.name: value})  # type: ignore[type-var]
    return merged


def merge_settings(base: ProxySettings, own: ProxySettings) -> ProxySettings:
    """A proxy's settings over its defaults'."""
    merged = ProxySettings(
        mode=own.mode if own.mode is not None else base.mode,
        timeouts=_merge(base.timeouts, own.timeouts),  # type: ignore[arg-type]
        options=_merge(base.options, own.options),  # type: ignore[arg-type]
        log_global=own.log_global if own.log_global is not None else base.log_global,
        no_log=own.no_log if own.no_log is not None else base.no_log,
        logs=own.logs or base.logs,
        maxconn=own.maxconn if own.maxconn is not None else base.maxconn,
        balance=own.balance if own.balance is not None else base.balance,
        balance_draws=own.balance_draws if own.balance is not None else base.balance_draws,
        fullconn=own.fullconn if own.fullconn is not None else base.fullconn,
        tcp_check=own.tcp_check if own.tcp_check is not None else base.tcp_check,
        external_check=own.external_check
        if own.external_check is not None
        else base.external_check,
        external_check_command=own.external_check_command or base.external_check_command,
        external_check_path=own.external_check_path or base.external_check_path,
        retries=own.retries if own.retries is not None else base.retries,
        default_backend=own.default_backend
        if own.default_backend is not None
        else base.default_backend,
        default_server=_merge(base.default_server, own.default_server),  # type: ignore[arg-type]
        monitor_uri=own.monitor_uri if own.monitor_uri is not None else base.monitor_uri,
        cookie=own.cookie if own.cookie is not None else base.cookie,
        unique_id_format=own.unique_id_format or base.unique_id_format,
        unique_id_header=own.unique_id_header or base.unique_id_header,
        source=own.source if own.source is not None else base.source,
        errorfiles=_merge_errorfiles(base.errorfiles, own.errorfiles),
        inspect_delay_ms=own.inspect_delay_ms
        if own.inspect_delay_ms is not None
        else base.inspect_delay_ms,
    )
    assert isinstance(merged.timeouts, Timeouts)
    assert isinstance(merged.options, ProxyOptions)
    return merged


def _merge_errorfiles(
    base: tuple[ErrorFile, ...], own: tuple[ErrorFile, ...]
) -> tuple[ErrorFile, ...]:
    """A proxy's `errorfile` lines over its defaults', status by status."""
    mine = {e.status for e in own}
    return tuple(e for e in base if e.status not in mine) + own


def _server(raw: RawServer, defaults: ServerOptions) -> Server:
    opts = _merge(defaults, raw.options)
    assert isinstance(opts, ServerOptions)
    server = Server(raw.location, raw.name, raw.address)
    for item in fields(ServerOptions):
        value = getattr(opts, item.name)
        if value is not None:
            server = replace(server, **{item.name: value})
    return server


@dataclass
class _StoreState:
    """What the first reference recorded for one certificate-store name."""

    origin: str  # "empty", "keywords" or "crt-store"
    values: dict[str, str | None]
    ocsp_update: bool | None
    location: SourceLocation
    load: CrtStoreLoad | None = None


@dataclass(frozen=True)
class _Use:
    """One certificate use waiting to be checked, with the data to build its reference."""

    name: str
    origin: CertOrigin
    location: SourceLocation
    crt_path: str
    values: dict[str, str | None]
    ocsp_update: bool | None
    keywords: bool
    discover: bool
    frontend: str | None = None
    bind: Bind | None = None
    entry: CrtListEntry | None = None
    crt_list: str | None = None
    store_ref: bool = False
    load: CrtStoreLoad | None = None


class _Builder:
    def __init__(self, parsed: ParsedConfig) -> None:
        self.parsed = parsed
        self.g: GlobalSettings = parsed.global_
        self.sink = DiagnosticSink()
        self.sink.extend(parsed.diagnostics)

    # ------------------------------------------------------------ proxies
    def proxies(self) -> tuple[tuple[Frontend, ...], tuple[Backend, ...]]:
        frontends: list[Frontend] = []
        backends: list[Backend] = []
        for raw in self.parsed.proxies:
            base = raw.defaults.settings if raw.defaults is not None else ProxySettings()
            settings = merge_settings(base, raw.settings)
            mode = settings.mode or Mode.TCP
            if raw.kind in (ProxyKind.FRONTEND, ProxyKind.LISTEN):
                default_backend = settings.default_backend
                if raw.kind is ProxyKind.LISTEN:
                    default_backend = raw.name
                frontends.append(
                    Frontend(
                        raw.location,
                        raw.name,
                        raw.kind,
                        mode,
                        settings,
                        raw.binds,
                        default_backend,
                        raw.use_backends,
                        raw.http_request_rules,
                        raw.stats,
                        raw.monitor_fail,
                        raw.http_response_rules,
                        raw.http_after_response_rules,
                        raw.tcp_content_rules,
                    )
                )
            if raw.kind in (ProxyKind.BACKEND, ProxyKind.LISTEN):
                backends.append(
                    Backend(
                        raw.location,
                        raw.name,
                        raw.kind,
                        mode,
                        settings,
                        settings.balance or Balance.ROUNDROBIN,
                        tuple(_server(s, settings.default_server) for s in raw.servers),
                        raw.http_request_rules if raw.kind is ProxyKind.BACKEND else (),
                        raw.http_response_rules if raw.kind is ProxyKind.BACKEND else (),
                        raw.http_after_response_rules if raw.kind is ProxyKind.BACKEND else (),
                        raw.tcp_content_rules if raw.kind is ProxyKind.BACKEND else (),
                    )
                )
        return tuple(frontends), tuple(backends)

    def check_names(self) -> None:
        seen: dict[str, list[RawProxy]] = {}
        for raw in self.parsed.proxies:
            for other in seen.get(raw.name, []):
                caps = {
                    ProxyKind.FRONTEND: {"fe"},
                    ProxyKind.BACKEND: {"be"},
                    ProxyKind.LISTEN: {"fe", "be"},
                }
                if caps[raw.kind] & caps[other.kind]:
                    self.sink.error(
                        raw.location,
                        raw.kind.value,
                        f"{raw.kind.value} '{raw.name}' has the same name as "
                        f"{other.kind.value} '{other.name}' declared at {other.location}.",
                        Reason.DUPLICATE,
                    )
                    break
            seen.setdefault(raw.name, []).append(raw)
            servers: dict[str, RawServer] = {}
            for server in raw.servers:
                if server.name in servers:
                    self.sink.error(
                        server.location,
                        "server",
                        f"{raw.kind.value} '{raw.name}' : server name '{server.name}' is "
                        f"already used by the server declared at "
                        f"{servers[server.name].location}.",
                        Reason.DUPLICATE,
                    )
                else:
                    servers[server.name] = server

    def check_proxies(self, frontends: tuple[Frontend, ...], backends: tuple[Backend, ...]) -> None:
        names = {b.name: b for b in backends}
        for fe in frontends:
            if not fe.binds:
                self.sink.warning(
                    fe.location,
                    fe.kind.value,
                    f"{fe.kind.value} '{fe.name}' has no 'bind' directive. Please declare it as "
                    "a backend if this was intended.",
                    Reason.MISSING_REFERENCE,
                )
            if fe.default_backend is not None and fe.kind is ProxyKind.FRONTEND:
                if fe.default_backend not in names:
                    where = self._default_backend_location(fe)
                    self.sink.error(
                        where,
                        "default_backend",
                        f"Proxy '{fe.name}': unable to find required default_backend: "
                        f"'{fe.default_backend}'.",
                        Reason.MISSING_REFERENCE,
                    )
                else:
                    self._check_mode(
                        fe, names[fe.default_backend], self._default_backend_location(fe)
                    )
            for rule in fe.use_backends:
                if "%[" in rule.backend:  # a dynamic name: looked up per request
                    try:
                        parse_header_format(rule.backend)
                    except SampleSyntaxError as error:
                        self.sink.error(
                            rule.location,
                            "use_backend",
                            f"{fe.kind.value} '{fe.name}': 'use_backend {rule.backend}' : {error}",
                            Reason.UNSUPPORTED,
                        )
                    continue
                if rule.backend not in names:
                    self.sink.error(
                        rule.location,
                        "use_backend",
                        f"{fe.kind.value} '{fe.name}': unable to find required use_backend: "
                        f"'{rule.backend}'.",
                        Reason.MISSING_REFERENCE,
                    )
                else:
                    self._check_mode(fe, names[rule.backend], rule.location)
            if fe.mode is Mode.TCP and (fe.http_response_rules or fe.http_after_response_rules):
                first = (fe.http_response_rules or fe.http_after_response_rules)[0]
                self.sink.warning(
                    first.location,
                    "http-response",
                    f"'http-response' rules ignored for {fe.kind.value} '{fe.name}' as they "
                    "require HTTP mode.",
                    Reason.CONFLICT,
                )
            if fe.mode is Mode.TCP and fe.http_request_rules:
                self.sink.warning(
                    fe.http_request_rules[0].location,
                    "http-request",
                    f"'http-request' rules ignored for {fe.kind.value} '{fe.name}' as they "
                    "require HTTP mode.",
                    Reason.CONFLICT,
                )
            for bind in fe.binds:
                if bind.ssl and not bind.cert_sources:
                    self.sink.error(
                        bind.location,
                        "bind",
                        f"Proxy '{fe.name}': no SSL certificate specified for bind "
                        f"'{bind.text}' at [{bind.location}] (use 'crt').",
                        Reason.MISSING_REFERENCE,
                    )

    def _default_backend_location(self, fe: Frontend) -> SourceLocation:
        return fe.location

    def _check_mode(self, fe: Frontend, be: Backend, where: SourceLocation) -> None:
        if fe.mode is Mode.HTTP and be.mode is not Mode.HTTP:
            self.sink.error(
                where,
                "use_backend",
                f"{fe.kind.value} '{fe.name}': unable to use backend '{be.name}' with wrong "
                f"mode, required: http, has: {be.mode.value}.",
                Reason.CONFLICT,
            )

    # ------------------------------------------------------------ certificates
    def _discovery_values(self, crt_path: str) -> dict[str, str | None]:
        """The sidecar names HAProxy records for a discovery-mode store (even for
        files that don't exist: `show ssl cert` prints them, the consistency rules compare them)."""
        base = crt_path
        if self.g.ssl_load_extra_del_ext and base.endswith(".crt"):
            base = base[: -len(".crt")]
        extra = self.g.ssl_load_extra_files
        return {
            "key": None,  # B.key or the PEM itself: only known once the PEM is read
            "ocsp": f"{base}.ocsp" if "ocsp" in extra else None,
            "issuer": f"{base}.issuer" if "issuer" in extra else None,
            "sctl": f"{base}.sctl" if "sctl" in extra else None,
        }

    def uses(self, frontends: tuple[Frontend, ...]) -> list[_Use]:
        loads = {load.name: load for store in self.parsed.crt_stores for load in store.loads}
        order = {name: index for index, name in enumerate(self.parsed.files)}
        events: list[tuple[tuple[int, int, int], _Use]] = []
        for store in self.parsed.crt_stores:
            for load in store.loads:
                use = _Use(
                    name=load.name,
                    origin=CertOrigin.CRT_STORE,
                    location=load.location,
                    crt_path=load.crt_path,
                    values={
                        "key": load.key_path,
                        "ocsp": load.ocsp_path,
                        "issuer": load.issuer_path,
                        "sctl": load.sctl_path,
                    },
                    ocsp_update=load.ocsp_update,
                    keywords=True,
                    discover=False,
                    load=load,
                )
                key = (order.get(load.location.file, 0), load.location.line, 0)
                events.append((key, use))
        for fe in frontends:
            for bind in fe.binds:
                key0 = (order.get(bind.location.file, 0), bind.location.line)
                sub = 0
                for source in bind.cert_sources:
                    for use in self._source_uses(fe, bind, source, loads):
                        sub += 1
                        events.append(((key0[0], key0[1], sub), use))
        events.sort(key=lambda item: item[0])
        return [use for _, use in events]

    def _source_uses(
        self, fe: Frontend, bind: Bind, source: CertSource, loads: dict[str, CrtStoreLoad]
    ) -> list[_Use]:
        uses: list[_Use] = []
        if source.kind is CertSourceKind.STORE:
            load = loads.get(source.written)
            uses.append(
                self._store_use(fe, bind, source.written, source.location, load, None, None)
            )
        elif source.kind in (CertSourceKind.FILE, CertSourceKind.DIRECTORY):
            paths = (
                source.directory_files
                if source.kind is CertSourceKind.DIRECTORY
                else (source.path,)
            )
            for path in paths:
                if path in loads:
                    # an unnamed crt-store entry is found by its path, like HAProxy's store
                    uses.append(
                        self._store_use(fe, bind, path, source.location, loads[path], None, None)
                    )
                    continue
                uses.append(
                    _Use(
                        path,
                        CertOrigin.BIND,
                        source.location,
                        path,
                        self._discovery_values(path),
                        None,
                        False,
                        True,
                        fe.name,
                        bind,
                    )
                )
        elif source.crt_list is not None:
            for entry in source.crt_list.entries:
                if entry.crt.startswith("@") or entry.crt_path in loads:
                    uses.append(
                        self._store_use(
                            fe,
                            bind,
                            entry.crt_path,
                            entry.location,
                            loads.get(entry.crt_path),
                            entry,
                            source.crt_list.path,
                        )
                    )
                    continue
                values: dict[str, str | None]
                if entry.names_files:
                    values = {
                        "key": entry.key,
                        "ocsp": entry.ocsp,
                        "issuer": entry.issuer,
                        "sctl": entry.sctl,
                    }
                else:
                    values = self._discovery_values(entry.crt_path)
                uses.append(
                    _Use(
                        entry.crt_path,
                        CertOrigin.CRT_LIST,
                        entry.location,
                        entry.crt_path,
                        values,
                        entry.ocsp_update,
                        entry.uses_store_keywords,
                        not entry.names_files,
                        fe.name,
                        bind,
                        entry,
                        source.crt_list.path,
                    )
                )
        return uses

    def _store_use(
        self,
        fe: Frontend,
        bind: Bind,
        name: str,
        where: SourceLocation,
        load: CrtStoreLoad | None,
        entry: CrtListEntry | None,
        crt_list: str | None,
    ) -> _Use:
        origin = CertOrigin.CRT_LIST if entry is not None else CertOrigin.BIND
        # a crt-list line may restate the store's keywords; then they must agree with it
        restated = entry if entry is not None and entry.uses_store_keywords else None
        values: dict[str, str | None] = {"key": None, "ocsp": None, "issuer": None, "sctl": None}
        if restated is not None:
            values = {
                "key": restated.key,
                "ocsp": restated.ocsp,
                "issuer": restated.issuer,
                "sctl": restated.sctl,
            }
        return _Use(
            name,
            origin,
            where,
            load.crt_path if load else name,
            values,
            restated.ocsp_update if restated is not None else None,
            restated is not None,
            False,
            fe.name,
            bind,
            entry,
            crt_list,
            True,
            load,
        )

    def _show_update(self, value: bool | None) -> str:
        if value is None:
            mode = "on" if self.g.ocsp_update_mode else "off"
            return f"'default' (ocsp-update.mode {mode})"
        return "'on'" if value else "'off'"

    def _diffs(self, state: _StoreState, use: _Use) -> list[str]:
        lines: list[str] = []
        for name in _FIELDS:
            before, after = state.values.get(name), use.values.get(name)
            if name == "key" and (state.origin == "empty" or not use.keywords):
                continue  # discovery key name depends on the PEM's content
            if before != after:
                lines.append(
                    f"- different parameter '{name}' : previously '{before or '(null)'}' vs "
                    f"'{after or '(null)'}'"
                )
        mode = self.g.ocsp_update_mode
        before_eff = state.ocsp_update if state.ocsp_update is not None else mode
        after_eff = use.ocsp_update if use.ocsp_update is not None else mode
        if before_eff != after_eff:
            lines.append(
                "- different parameter 'ocsp-update' : previously "
                f"{self._show_update(state.ocsp_update)} vs {self._show_update(use.ocsp_update)}"
            )
        return lines

    def _conflict(self, use: _Use, lines: list[str]) -> None:
        detail = "\n".join(lines)
        if use.origin is CertOrigin.CRT_LIST and use.entry is not None:
            message = (
                f"'{use.name}' in crt-list '{use.crt_list}' line {use.entry.location.line}, "
                f"is already defined with incompatible parameters:\n{detail}"
            )
        else:
            label = f"'{use.bind.name}' in section 'frontend' : " if use.bind else ""
            message = (
                f"{label}Can't load '{use.name}', is already defined with incompatible "
                f"parameters:\n{detail}"
            )
        self.sink.error(use.location, "ocsp-update", message, Reason.CONFLICT)

    def references(self, frontends: tuple[Frontend, ...]) -> tuple[CertificateReference, ...]:
        stores: dict[str, _StoreState] = {}
        refs: list[CertificateReference] = []
        for use in self.uses(frontends):
            if use.store_ref and use.load is None:
                where = f"in crt-list '{use.crt_list}'" if use.crt_list else "on this bind line"
                self.sink.error(
                    use.location,
                    "crt",
                    f"unable to load certificate '{use.name}' {where}: no crt-store entry "
                    "has this name. Define it with 'load crt … [alias …]' in a crt-store "
                    "section written before its first use.",
                    Reason.MISSING_REFERENCE,
                )
                continue
            state = stores.get(use.name)
            if use.origin is CertOrigin.CRT_STORE:
                stores[use.name] = _StoreState(
                    "crt-store", use.values, use.ocsp_update, use.location, use.load
                )
            elif state is None:
                if use.store_ref:
                    # a load written after this use: HAProxy has no such store yet
                    self.sink.error(
                        use.location,
                        "crt",
                        f"unable to load certificate '{use.name}': its crt-store entry is "
                        f"defined later, at {use.load.location if use.load else '?'}; move the "
                        "crt-store section before its first use.",
                        Reason.MISSING_REFERENCE,
                    )
                    continue
                stores[use.name] = _StoreState(
                    "keywords" if use.keywords else "empty",
                    use.values,
                    use.ocsp_update,
                    use.location,
                )
            else:
                self._check(state, use)
            refs.append(self._reference(use, stores[use.name]))
        return tuple(refs)

    def _check(self, state: _StoreState, use: _Use) -> None:
        if state.origin == "empty" and not use.keywords:
            return
        if state.origin == "crt-store" and not use.keywords:
            return
        if state.origin == "empty":
            header = [
                "Can't use the certificate previously defined without any keyword with "
                "these keywords:"
            ]
            self._conflict(use, header + self._diffs(state, use))
            return
        if state.origin == "keywords" and not use.keywords:
            header = [
                "Can't use the certificate previously defined with keywords without these keywords:"
            ]
            self._conflict(use, header + self._diffs(state, use))
            return
        diffs = self._diffs(state, use)
        if diffs:
            self._conflict(use, diffs)

    def _reference(self, use: _Use, state: _StoreState) -> CertificateReference:
        load = use.load
        if load is not None:
            values = {
                "key": load.key_path,
                "ocsp": load.ocsp_path,
                "issuer": load.issuer_path,
                "sctl": load.sctl_path,
            }
            explicit = use.ocsp_update if use.ocsp_update is not None else load.ocsp_update
            discover = False
        else:
            values = use.values if not use.discover else dict.fromkeys(_FIELDS)
            explicit = use.ocsp_update if use.ocsp_update is not None else state.ocsp_update
            discover = use.discover

        def as_path(value: str | None) -> Path | None:
            return Path(value) if value is not None else None

        entry = use.entry
        bind = use.bind
        return CertificateReference(
            name=use.name,
            crt_path=Path(load.crt_path if load is not None else use.crt_path),
            key_path=as_path(values["key"]),
            ocsp_path=as_path(values["ocsp"]),
            issuer_path=as_path(values["issuer"]),
            sctl_path=as_path(values["sctl"]),
            ocsp_update=explicit,
            effective_ocsp_update=explicit if explicit is not None else self.g.ocsp_update_mode,
            origin=use.origin,
            discover_sidecars=discover,
            location=use.location,
            frontend=use.frontend,
            bind=bind.name if bind is not None else None,
            bind_location=bind.location if bind is not None else None,
            crt_list=use.crt_list,
            alpn=entry.alpn
            if entry is not None and entry.alpn is not None
            else (bind.alpn if bind is not None else None),
            sni_filters=entry.sni_filters if entry is not None else (),
            ssl_min_ver=entry.ssl_min_ver
            if entry and entry.ssl_min_ver
            else (bind.ssl_options.min_ver if bind is not None else None),
            ssl_max_ver=entry.ssl_max_ver
            if entry and entry.ssl_max_ver
            else (bind.ssl_options.max_ver if bind is not None else None),
            ciphers=entry.ciphers
            if entry and entry.ciphers
            else (bind.ciphers if bind is not None else None),
            ciphersuites=entry.ciphersuites
            if entry and entry.ciphersuites
            else (bind.ciphersuites if bind is not None else None),
            verify=entry.verify if entry is not None else None,
            ca_file=entry.ca_file if entry is not None else None,
            crl_file=entry.crl_file if entry is not None else None,
            ocsp_responder=(entry.ocsp_responder if entry is not None else None)
            or (load.ocsp_responder if load is not None else None)
            or self.g.ocsp_update_responder_url,
        )


def build_config(parsed: ParsedConfig) -> tuple[Config | None, tuple[Diagnostic, ...]]:
    """Merge, cross-check and freeze; the Config is None when any error was found."""
    builder = _Builder(parsed)
    builder.check_names()
    frontends, backends = builder.proxies()
    builder.check_proxies(frontends, backends)
    references = builder.references(frontends)
    if parsed.global_.zero_warning:
        promoted = [
            replace(d, severity=Severity.ERROR) if d.severity is Severity.WARNING else d
            for d in builder.sink.snapshot()
        ]
        builder.sink = DiagnosticSink()
        builder.sink.extend(promoted)
    diagnostics = builder.sink.snapshot()
    if builder.sink.has_errors:
        return None, diagnostics
    config = Config(
        global_=parsed.global_,
        defaults=parsed.defaults,
        frontends=frontends,
        backends=backends,
        crt_stores=parsed.crt_stores,
        files=parsed.files,
        references=references,
    )
    return config, diagnostics
