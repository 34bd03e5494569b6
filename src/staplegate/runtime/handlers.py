"""Runtime-API commands: a parsed command and the socket's level in, HAProxy's answer out.

Every answer is the text HAProxy 3.2 prints (docs/reference/runtime-api.md) without
the end-of-answer newline, which the server adds. Levels are checked before anything else:
a command above the socket's level answers `Permission denied` (HAProxy 3.2 does not check
the OCSP commands; we do). Nothing here prints a private key.

Certificate commands share one lock, taken with "try" semantics as in HAProxy: while a
commit is in progress another certificate command answers `Operations on certificates are
currently locked!` rather than waiting.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import string
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from staplegate.certs import LoadedCertificate, SidecarOutcome, check_ocsp_sidecar
from staplegate.clock import Clock, SystemClock
from staplegate.config.model import StatsLevel
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.logline import format_update_line
from staplegate.ocsp.machine import State
from staplegate.ocsp.verify import CertStatus
from staplegate.proxy.backends import AdminState
from staplegate.runtime import formats
from staplegate.runtime.contract import (
    CommitError,
    OcspService,
    ProcessView,
    ReloadReport,
    ServerView,
    UnknownServer,
)
from staplegate.runtime.grammar import (
    COMMANDS,
    Command,
    CommandName,
    UsageError,
)
from staplegate.runtime.transaction import (
    PayloadKind,
    Transaction,
    TransactionError,
    begin,
    split_name,
)
from staplegate.updater.results import EntrySnapshot, UpdateOutcome, UpdateResult

PERMISSION_DENIED = "Permission denied"
LOCKED = "Operations on certificates are currently locked!"
CERT_NOT_FOUND = "Can't display the certificate: Not found or the certificate is a bundle!"
NO_TRANSACTION = "No ongoing transaction!"

_HEX = frozenset(string.hexdigits)


@dataclass
class _Store:
    """A store created at run time with `new ssl cert` (None = still empty)."""

    certificate: LoadedCertificate | None = None


class RuntimeHandlers:
    """Executes commands against a `ProcessView`; one instance serves every socket."""

    def __init__(
        self,
        process: ProcessView,
        *,
        clock: Clock | None = None,
        update_timeout: float | None = None,
        openssl: str = "openssl",
    ) -> None:
        self._process = process
        self._clock: Clock = clock or SystemClock()
        self._update_timeout = update_timeout
        self._openssl = openssl
        self._transaction: Transaction | None = None
        self._runtime_stores: dict[str, _Store] = {}
        self._lock = asyncio.Lock()

    async def execute(self, command: Command | UsageError, level: StatsLevel) -> str:
        """The answer to one command at `level` (without the final end-of-answer newline)."""
        if isinstance(command, UsageError):
            return f"{command.message}\n\n{self.help_text(level)}"
        if command.spec.level > level:
            return PERMISSION_DENIED + "\n"
        handler = _HANDLERS.get(command.name)
        if handler is None:  # prompt/quit are the server's; asking here is harmless
            return ""
        return await handler(self, command, level)

    # --- general ---

    def help_text(self, level: StatsLevel, prefix: Sequence[str] = ()) -> str:
        lines = ["The following commands are valid at this level:\n"]
        for spec in COMMANDS:
            if spec.level > level or tuple(prefix) != spec.words[: len(prefix)]:
                continue
            lines.append(f"  {spec.usage:<48} : {spec.summary}\n")
        return "".join(lines)

    async def _help(self, command: Command, level: StatsLevel) -> str:
        return self.help_text(level, command.args)

    # --- process and servers ---

    async def _reload(self, command: Command, level: StatsLevel) -> str:
        """HAProxy's master-CLI answer: `Success=1|0`, `--`, then the reload's messages."""
        return _reload_text(await self._process.reload())

    async def _show_reload(self, command: Command, level: StatsLevel) -> str:
        report = self._process.last_reload()
        if report is None:
            return "No reload yet.\n"
        return _reload_text(report)

    async def _show_info(self, command: Command, level: StatsLevel) -> str:
        values: dict[str, str | int | None] = dict(self._process.info())
        values.update(self._ocsp_info())
        return formats.info_text(values)

    def _ocsp_info(self) -> dict[str, str | int | None]:
        snapshot = self._updater().snapshot()
        served = [e for e in snapshot if e.staple is not None and e.staple.served]
        unstapled_must = 0
        by_id = {e.cert_id: e for e in snapshot}
        for certificate in self._live_certificates().values():
            if not certificate.must_staple:
                continue
            entry = by_id.get(certificate.cert_id) if certificate.cert_id else None
            if entry is None or entry.staple is None or not entry.staple.served:
                unstapled_must += 1
        return {
            "OcspEntries": len(snapshot),
            "OcspStapled": len(served),
            "OcspUpdateSuccesses": sum(e.successes for e in snapshot),
            "OcspUpdateFailures": sum(e.failures for e in snapshot),
            "OcspRevoked": sum(
                1 for e in served if e.staple is not None and e.staple.status is CertStatus.REVOKED
            ),
            "OcspMustStapleUnstapled": unstapled_must,
        }

    async def _show_stat(self, command: Command, level: StatsLevel) -> str:
        wanted = command.args[0] if command.args and command.args[0] != "-1" else None
        snapshot = self._updater().snapshot()
        rows = []
        for row in self._process.stats():
            fields = dict(row.fields)
            if wanted is not None and fields.get("pxname") != wanted:
                continue
            if level < StatsLevel.OPERATOR:
                for name in formats.LEGEND_FIELDS:
                    fields.pop(name, None)
            if row.certificates:
                fields.update(self._frontend_ocsp(row.certificates, snapshot))
            rows.append(fields)
        return formats.stat_csv(rows)

    def _frontend_ocsp(
        self, names: Sequence[str], snapshot: Sequence[EntrySnapshot]
    ) -> dict[str, str | int | None]:
        updater = self._updater()
        by_id = {e.cert_id: e for e in snapshot}
        entries = []
        for name in dict.fromkeys(names):
            cert_id = updater.find(name)
            if cert_id is not None and cert_id in by_id:
                entries.append(by_id[cert_id])
        served = [e for e in entries if e.staple is not None and e.staple.served]
        return {
            "ocsp_certs": len(dict.fromkeys(names)),
            "ocsp_stapled": len(served),
            "ocsp_update_ok": sum(e.successes for e in entries),
            "ocsp_update_err": sum(e.failures for e in entries),
            "ocsp_revoked": sum(
                1 for e in served if e.staple is not None and e.staple.status is CertStatus.REVOKED
            ),
        }

    async def _show_servers_state(self, command: Command, level: StatsLevel) -> str:
        servers = list(self._process.servers())
        if command.args:
            wanted = command.args[0]
            servers = [s for s in servers if s.backend == wanted]
            if not servers and wanted not in {s.backend for s in self._process.servers()}:
                return "Can't find backend.\n"
        now = self._clock.now()
        lines = ["1\n", formats.SERVERS_STATE_HEADER + "\n"]
        lines.extend(_server_state_line(server, now) + "\n" for server in servers)
        return "".join(lines)

    async def _disable_server(self, command: Command, level: StatsLevel) -> str:
        return self._set_state(command.args, AdminState.MAINT)

    async def _enable_server(self, command: Command, level: StatsLevel) -> str:
        return self._set_state(command.args, AdminState.READY)

    async def _set_server(self, command: Command, level: StatsLevel) -> str:
        args = command.args
        if len(args) < 2:
            return "'set server <srv>' expects <backend>/<server> and a setting.\n"
        if args[1] != "state":
            return (
                f"'set server <srv> {args[1]}' is not supported: staplegate only changes "
                "'state' at run time; change the configuration and reload for the rest.\n"
            )
        if len(args) < 3 or args[2] not in {s.value for s in AdminState}:
            return "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n"
        return self._set_state(args[:1], AdminState(args[2]))

    def _set_state(self, args: Sequence[str], state: AdminState) -> str:
        if not args or "/" not in args[0]:
            return "Require 'backend/server'.\n"
        backend, _, server = args[0].partition("/")
        servers = self._process.servers()
        if not any(s.backend == backend for s in servers):
            return "No such backend.\n"
        if not any(s.backend == backend and s.name == server for s in servers):
            return "No such server.\n"
        try:
            self._process.set_server_state(backend, server, state)
        except UnknownServer as exc:
            return f"{exc}\n"
        return ""

    # --- certificates ---

    def _live_certificates(self) -> dict[str, LoadedCertificate]:
        return {
            entry.name: entry.certificate
            for entry in self._process.certificates()
            if entry.certificate is not None
        }

    def _store(self, name: str) -> tuple[bool, LoadedCertificate | None]:
        """(exists, certificate) for a configured or run-time store."""
        live = self._live_certificates()
        if name in live:
            return True, live[name]
        store = self._runtime_stores.get(name)
        if store is not None:
            return True, store.certificate
        return False, None

    async def _show_ssl_cert(self, command: Command, level: StatsLevel) -> str:
        if not command.args:
            lines = []
            if self._transaction is not None:
                lines += ["# transaction\n", f"*{self._transaction.name}\n"]
            lines.append("# filename\n")
            names = sorted({*self._live_certificates(), *self._runtime_stores})
            lines.extend(f"{name}\n" for name in names)
            return "".join(lines)
        argument = command.args[0]
        in_transaction = argument.startswith("*")
        name = argument[1:] if in_transaction else argument.removeprefix("\\")
        show_ocsp = False
        if name.endswith(".ocsp") and not self._store(name)[0]:
            name, show_ocsp = name[: -len(".ocsp")], True
        if in_transaction:
            transaction = self._transaction
            if transaction is None or transaction.name != name:
                return CERT_NOT_FOUND + "\n"
            try:
                certificate: LoadedCertificate | None = transaction.build()
            except TransactionError as exc:
                return f"{exc}\n"
            status = "Uncommitted"
        else:
            exists, certificate = self._store(name)
            if not exists:
                return CERT_NOT_FOUND + "\n"
            status = (
                "Used"
                if name in self._live_certificates()
                else ("Unused" if certificate is not None else "Empty")
            )
        if show_ocsp:
            der = None
            if certificate is not None:
                if in_transaction:
                    der = certificate.ocsp.der if certificate.ocsp else None
                elif certificate.cert_id is not None:
                    der = self._updater().table.get(certificate.cert_id)
            return await self._response_text(der) if der else ""
        return _certificate_details(name, certificate, status)

    async def _show_ssl_crt_list(self, command: Command, level: StatsLevel) -> str:
        args = list(command.args)
        numbered = bool(args) and args[0] == "-n"
        if numbered:
            args = args[1:]
            if not args:
                return "'show ssl crt-list -n' expects a filename or a directory\n"
        views = self._process.crt_lists()
        if not args:
            return "".join(f"{view.name}\n" for view in views)
        wanted = args[0].rstrip("/") or "/"
        for view in views:
            if view.name == wanted:
                lines = [f"# {view.name}\n"]
                for entry in view.lines:
                    text = entry.store + (f":{entry.line}" if numbered else "")
                    if entry.options:
                        text += " [" + " ".join(entry.options) + "]"
                    elif entry.uses_store_keywords:
                        text += " []"
                    text += "".join(f" {f}" for f in entry.sni_filters)
                    lines.append(text + "\n")
                return "".join(lines)
        return "didn't find the specified filename\n"

    async def _new_ssl_cert(self, command: Command, level: StatsLevel) -> str:
        if not command.args:
            return "'new ssl cert' expects a filename\n"
        name = command.args[0]
        if self._lock.locked():
            return LOCKED + "\n"
        if self._store(name)[0]:
            return f"Certificate '{name}' already exists!\n"
        self._runtime_stores[name] = _Store()
        return f"New empty certificate store '{name}'!\n"

    async def _set_ssl_cert(self, command: Command, level: StatsLevel) -> str:
        if not command.args or command.payload is None:
            return "'set ssl cert' expects a filename and a certificate as a payload\n"
        argument = command.args[0]
        name, kind = split_name(argument)
        if self._lock.locked():
            return LOCKED + "\n"
        transaction = self._transaction
        if transaction is not None and transaction.name != name:
            return (
                f"The ongoing transaction is about '{transaction.name}' but you are trying to "
                f"set '{name}'\nCan't update {argument}!\n"
            )
        created = transaction is None
        if transaction is None:
            exists, live = self._store(name)
            if not exists:
                return (
                    "Can't replace a certificate which is not referenced by the configuration!\n"
                    f"Can't update {argument}!\n"
                )
            transaction = begin(name, live)
        try:
            transaction.apply(kind, command.payload)
        except TransactionError as exc:
            return f"{exc}\nCan't update {argument}!\n"
        self._transaction = transaction
        if kind is PayloadKind.SCTL:
            note = "staplegate sends no signed certificate timestamps: the .sctl is ignored.\n"
        else:
            note = ""
        verb = "created" if created else "updated"
        return f"{note}Transaction {verb} for certificate {name}!\n"

    async def _commit_ssl_cert(self, command: Command, level: StatsLevel) -> str:
        if not command.args:
            return "'commit ssl cert' expects a filename\n"
        name = command.args[0]
        transaction = self._transaction
        if transaction is None:
            return NO_TRANSACTION + "\n"
        if transaction.name != name:
            return (
                f"The ongoing transaction is about '{transaction.name}' but you are trying to "
                f"set '{name}'\n"
            )
        if self._lock.locked():
            return LOCKED + "\n"
        async with self._lock:
            try:
                certificate = transaction.build()
            except TransactionError as exc:
                return f"Committing {name}\n{exc}\nFailed!\n"
            warnings = _commit_warnings(certificate, self._clock.now())
            if name in self._live_certificates():
                try:
                    result = await self._process.commit_certificate(name, certificate)
                except CommitError as exc:
                    return f"Committing {name}\n{exc}\nFailed!\n"
                dots = "." * result.instances
                warnings += list(result.warnings)
            else:
                self._runtime_stores[name] = _Store(certificate)
                dots = ""
            self._transaction = None
        text = "".join(f"{warning}\n" for warning in warnings)
        return f"Committing {name}{dots}\n{text}Success!\n"

    async def _abort_ssl_cert(self, command: Command, level: StatsLevel) -> str:
        if not command.args:
            return "'abort ssl cert' expects a filename\n"
        transaction = self._transaction
        if transaction is None or transaction.name != command.args[0]:
            return NO_TRANSACTION + "\n"
        if self._lock.locked():
            return LOCKED + "\n"
        self._transaction = None
        return f"Transaction aborted for certificate '{transaction.name}'!\n"

    async def _del_ssl_cert(self, command: Command, level: StatsLevel) -> str:
        if not command.args:
            return "'del ssl cert' expects a certificate name\n"
        name = command.args[0]
        if self._lock.locked():
            return LOCKED + "\n"
        prefix = "Can't remove the certificate: "
        if name in self._live_certificates():
            return f"{prefix}certificate '{name}' in use, can't remove!\n"
        if name not in self._runtime_stores:
            return f"{prefix}certificate '{name}' doesn't exist!\n"
        if self._transaction is not None and self._transaction.name == name:
            return f"{prefix}certificate '{name}' is being modified (abort ssl cert first)!\n"
        del self._runtime_stores[name]
        return f"Certificate '{name}' deleted!\n"

    # --- OCSP ---

    def _updater(self) -> OcspService:
        return self._process.ocsp_updater()

    async def _show_ssl_ocsp_response(self, command: Command, level: StatsLevel) -> str:
        args = list(command.args)
        updater = self._updater()
        if not args:
            entries = sorted(updater.snapshot(), key=lambda e: e.cert_id.der.ljust(128, b"\0"))
            return "# Certificate IDs\n" + "".join(_entry_block(e) for e in entries)
        form = "text"
        if args[0] in ("text", "base64"):
            form = args.pop(0)
            if not args:
                return "'show ssl ocsp-response [text|base64]' expects a valid certid.\n"
        key = args[0]
        cert_id = updater.find(key)
        if cert_id is None:
            if _looks_like_certid(key) or self._store(key)[0]:
                return "Certificate ID or path does not match any certificate.\n"
            return "'show ssl ocsp-response' expects a valid certid or certificate path.\n"
        der = updater.table.get(cert_id)
        if der is None:
            return ""
        if form == "base64":
            return base64.b64encode(der).decode("ascii")
        return await self._response_text(der)

    async def _response_text(self, der: bytes) -> str:
        try:
            return await asyncio.to_thread(formats.ocsp_response_text, der, openssl=self._openssl)
        except (OSError, ValueError) as exc:
            return f"Can't print the OCSP response with openssl ({exc}); use 'base64'.\n"

    async def _set_ssl_ocsp_response(self, command: Command, level: StatsLevel) -> str:
        text = command.payload if command.payload is not None else " ".join(command.args)
        text = "".join(text.split())  # CR, LF and spaces inside the payload are dropped
        if not text:
            return "'set ssl ocsp-response' expects response in base64 encoding.\n"
        try:
            der = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return "'set ssl ocsp-response' received invalid base64 encoded response.\n"
        outcome = self._updater().set_response(der)
        if outcome.accepted:
            return outcome.message + "\n"
        answer = outcome.message + ".\n"
        if outcome.hint:
            answer += f"The current response is kept: {outcome.hint}.\n"
        return answer

    async def _update_ssl_ocsp_response(self, command: Command, level: StatsLevel) -> str:
        if not command.args:
            return "'update ssl ocsp-response' expects a filename\n"
        argument = command.args[0]
        failed = f"Can't send ocsp request for {argument}!\n"
        updater = self._updater()
        cert_id = updater.find(argument)
        if cert_id is None:
            if self._store(argument)[0]:
                return (
                    "'update ssl ocsp-response' only works on certificates that already have "
                    "a known OCSP response.\n" + failed
                )
            return (
                "Unknown certificate! 'update ssl ocsp-response' expects an already known "
                "certificate file name.\n" + failed
            )
        # Unlike HAProxy we wait for the result; always longer than the fetch's own deadline,
        # so a fetch that times out is reported as timed out, not as "still running".
        timeout = max(self._update_timeout or 0.0, updater.update_wait)
        outcome = await updater.update_now(cert_id, timeout=timeout)
        return _update_answer(outcome, argument) + "\n"

    async def _show_ssl_ocsp_updates(self, command: Command, level: StatsLevel) -> str:
        now = self._clock.now()
        snapshot = self._updater().snapshot()
        fetching = [e for e in snapshot if e.state is State.FETCHING]
        queued = [e for e in snapshot if e.state is State.WAITING and e.next_attempt is not None]
        queued.sort(key=lambda e: e.next_attempt or now)  # stable: ties keep config order
        lines = [formats.OCSP_UPDATES_HEADER + "\n"]
        for entry in (*fetching, *queued):
            next_update = entry.next_attempt if entry.state is State.WAITING else None
            last = formats.log_date(entry.last_success) if entry.last_success else "-"
            lines.append(
                " | ".join(
                    (
                        entry.cert_id_hex,
                        entry.path,
                        formats.log_date(next_update or now),
                        last,
                        str(entry.successes),
                        str(entry.failures),
                        str(int(entry.last_status)),
                        entry.last_status_text,
                    )
                )
                + "\n"
            )
        return "".join(lines)

    async def _show_ssl_crl_watch(self, command: Command, level: StatsLevel) -> str:
        lines = [formats.CRL_WATCH_HEADER + "\n"]
        for source in self._updater().crl_sources():
            for target in source.targets:
                verdict = source.verdict(target.path)
                fields = (
                    target.path,
                    source.url,
                    verdict.status.value,
                    verdict.reason or "-",
                    _date_or_dash(verdict.revocation_time),
                    _date_or_dash(source.this_update),
                    _date_or_dash(source.next_update),
                    _date_or_dash(source.next_refresh),
                    _date_or_dash(source.last_success),
                    str(source.successes),
                    str(source.failures),
                    source.last_detail or "-",
                )
                lines.append(" | ".join(fields) + "\n")
        return "".join(lines)

    async def _update_ssl_crl(self, command: Command, level: StatsLevel) -> str:
        if not command.args:
            return "'update ssl crl' expects a CRL URL or a certificate path.\n"
        name = command.args[0]
        updater = self._updater()
        source = await updater.update_crl(name, timeout=updater.update_wait)
        if source is None:
            return (
                f"'{name}' is neither a watched CRL URL nor a certificate the CRL watch "
                "follows (see 'show ssl crl-watch').\n"
            )
        return (
            f"{source.url}: {source.last_detail or 'no answer yet'} "
            f"({source.successes} successes, {source.failures} failures)\n"
        )


def _date_or_dash(when: dt.datetime | None) -> str:
    return formats.log_date(when) if when is not None else "-"


_HANDLERS = {
    CommandName.HELP: RuntimeHandlers._help,
    CommandName.SHOW_INFO: RuntimeHandlers._show_info,
    CommandName.SHOW_STAT: RuntimeHandlers._show_stat,
    CommandName.SHOW_SERVERS_STATE: RuntimeHandlers._show_servers_state,
    CommandName.DISABLE_SERVER: RuntimeHandlers._disable_server,
    CommandName.ENABLE_SERVER: RuntimeHandlers._enable_server,
    CommandName.SET_SERVER: RuntimeHandlers._set_server,
    CommandName.SHOW_SSL_CERT: RuntimeHandlers._show_ssl_cert,
    CommandName.SHOW_SSL_CRT_LIST: RuntimeHandlers._show_ssl_crt_list,
    CommandName.NEW_SSL_CERT: RuntimeHandlers._new_ssl_cert,
    CommandName.SET_SSL_CERT: RuntimeHandlers._set_ssl_cert,
    CommandName.COMMIT_SSL_CERT: RuntimeHandlers._commit_ssl_cert,
    CommandName.ABORT_SSL_CERT: RuntimeHandlers._abort_ssl_cert,
    CommandName.DEL_SSL_CERT: RuntimeHandlers._del_ssl_cert,
    CommandName.SHOW_SSL_OCSP_RESPONSE: RuntimeHandlers._show_ssl_ocsp_response,
    CommandName.SET_SSL_OCSP_RESPONSE: RuntimeHandlers._set_ssl_ocsp_response,
    CommandName.UPDATE_SSL_OCSP_RESPONSE: RuntimeHandlers._update_ssl_ocsp_response,
    CommandName.SHOW_SSL_OCSP_UPDATES: RuntimeHandlers._show_ssl_ocsp_updates,
    CommandName.SHOW_SSL_CRL_WATCH: RuntimeHandlers._show_ssl_crl_watch,
    CommandName.UPDATE_SSL_CRL: RuntimeHandlers._update_ssl_crl,
    CommandName.RELOAD: RuntimeHandlers._reload,
    CommandName.SHOW_RELOAD: RuntimeHandlers._show_reload,
}


def _reload_text(report: ReloadReport) -> str:
    lines = [f"Success={int(report.ok)}", "--", report.message, *report.lines]
    return "\n".join(lines) + "\n"


def _looks_like_certid(text: str) -> bool:
    return 0 < len(text) <= 256 and len(text) % 2 == 0 and all(c in _HEX for c in text)


def _entry_block(entry: EntrySnapshot) -> str:
    cert_id: CertId = entry.cert_id
    return (
        f"Certificate ID key : {entry.cert_id_hex}\n"
        f"Certificate path : {entry.path}\n"
        " Certificate ID:\n"
        f"   Issuer Name Hash: {cert_id.issuer_name_hash.hex().upper()}\n"
        f"   Issuer Key Hash: {cert_id.issuer_key_hash.hex().upper()}\n"
        f"   Serial Number: {formats.serial_hex(cert_id.serial_number)}\n"
    )


def _update_answer(outcome: UpdateOutcome, argument: str) -> str:
    """One line: the `<OCSP-UPDATE>` log line of the attempt, or why there was none."""
    path = outcome.path or argument
    if outcome.result is UpdateResult.COMPLETED:
        return format_update_line(
            path=path,
            status=outcome.status,
            detail=outcome.detail,
            failures=outcome.failures,
            successes=outcome.successes,
        )
    if outcome.result is UpdateResult.TIMED_OUT:
        return f"OCSP update for {path} still running: {outcome.detail}"
    if outcome.result is UpdateResult.CANNOT_FETCH:
        return f"Can't send ocsp request for {argument}: {outcome.detail or 'no OCSP URI'}"
    if outcome.result is UpdateResult.UNKNOWN_CERTIFICATE:
        return f"Unknown certificate {argument}: {outcome.detail}"
    return f"OCSP update for {path} stopped: {outcome.detail or 'the updater is stopping'}"


def _commit_warnings(certificate: LoadedCertificate, now: dt.datetime) -> list[str]:
    """Warnings `commit ssl cert` prints (the commit still succeeds, as in HAProxy)."""
    warnings = []
    if certificate.ocsp is not None:
        check = check_ocsp_sidecar(certificate, now)
        if check.outcome is SidecarOutcome.IGNORED and check.warning:
            warnings.append(check.warning)
    if certificate.ocsp_uri is not None and certificate.issuer is None:
        warnings.append(
            f"'{certificate.name}' has an OCSP URI but no issuer was found (not in the chain, "
            f"no '.issuer' payload): it cannot be stapled. Send 'set ssl cert "
            f"{certificate.name}.issuer <<' before committing."
        )
    if now > certificate.not_after:
        warnings.append(f"'{certificate.name}': certificate expired on {certificate.not_after}.")
    return warnings


def _certificate_details(name: str, certificate: LoadedCertificate | None, status: str) -> str:
    lines = [f"Filename: {name}"]
    if certificate is not None:
        files = certificate.files
        lines.append(f"Crt filename: {files.crt}")
        if files.key is not None:
            lines.append(f"Key filename: {files.key}")
        if files.ocsp is not None:
            lines.append(f"OCSP filename: {files.ocsp}")
        if files.issuer is not None:
            lines.append(f"OCSP Issuer filename: {files.issuer}")
        if files.sctl is not None:
            lines.append(f"SCTL filename: {files.sctl}")
    lines.append(f"Status: {status}")
    if certificate is None:
        return "\n".join(lines) + "\n"
    leaf = certificate.leaf
    lines += [
        f"Serial: {certificate.serial_hex}",
        f"notBefore: {formats.openssl_date(certificate.not_before)}",
        f"notAfter: {formats.openssl_date(certificate.not_after)}",
        f"Subject Alternative Name: {formats.san_line(leaf)}",
        f"Algorithm: {certificate.key_type.haproxy_name}",
        f"SHA1 FingerPrint: {leaf.fingerprint(hashes.SHA1()).hex().upper()}",
        f"Subject: {formats.oneline_name(leaf.subject)}",
        f"Issuer: {formats.oneline_name(leaf.issuer)}",
    ]
    for member in certificate.chain:
        lines += _chain_lines(member)
    cert_id = certificate.cert_id.hex if certificate.cert_id is not None else ""
    lines.append(f"OCSP Response Key: {cert_id}")
    return "\n".join(lines) + "\n"


def _chain_lines(member: x509.Certificate) -> list[str]:
    return [
        f"Chain Subject: {formats.oneline_name(member.subject)}",
        f"Chain Issuer: {formats.oneline_name(member.issuer)}",
    ]


def _server_state_line(server: ServerView, now: dt.datetime) -> str:
    op_state = 2 if server.up else 0  # SRV_ST_RUNNING / SRV_ST_STOPPED
    admin = {AdminState.READY: 0, AdminState.MAINT: 1, AdminState.DRAIN: 8}[server.admin]
    since = int((now - server.last_change).total_seconds()) if server.last_change else 0
    if server.check:
        check_status, check_result = (6, 3) if server.up else (8, 1)  # L4OK/PASSED, L4CON/FAILED
        health = server.rise + server.fall - 1 if server.up else 0
        check_state = 6  # CHK_ST_CONFIGURED | CHK_ST_ENABLED
    else:
        check_status, check_result, health, check_state = 0, 0, 0, 0
    fields = (
        server.backend_id, server.backend, server.server_id, server.name, server.address,
        op_state, admin, server.weight, server.weight, max(since, 0), check_status,
        check_result, health, check_state, 0, 0, 0, "-", server.port, "-", 0,
        0, "-", "-", 0,
    )  # fmt: skip
    return " ".join(str(f) for f in fields)
