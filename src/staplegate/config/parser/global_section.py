"""The `global` section: its keywords, each registered with its handler or its class.

Process settings, OCSP update tuning (`ocsp-update.*` and the 2.8 `tune.ssl.ocsp-update.*`
spellings), TLS defaults, `stats socket`, `log`, and the `httpclient.*` knobs the OCSP
fetcher honours. Unknown `tune.*` keywords are warnings: tunings do not change traffic.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
from dataclasses import replace

from staplegate.config.crtlist import parse_ocsp_update, responder_url_error
from staplegate.config.diagnostics import Reason, SourceLocation
from staplegate.config.model import (
    EXTRA_FILE_KINDS,
    CrlWatchMode,
    StatsLevel,
    StatsSocket,
    Verify,
)
from staplegate.config.parser.readers import read_log, read_ssl_options
from staplegate.config.parser.registry import (
    KeywordClass,
    KeywordTable,
    ignored,
    ignored_message,
    parsed_ignored_message,
    refused_all,
    supported,
)
from staplegate.config.parser.state import Handler, ParserState, field_change
from staplegate.config.shared_store import shared_store_url_error
from staplegate.config.values import AddressFamily, ValueSyntaxError, c_atoi, parse_socket_address


def _note_if_ignored(parser: ParserState, head: str, where: SourceLocation) -> None:
    """A read keyword that changes nothing still gets its warning, whatever its value."""
    entry = GLOBAL.get(head)
    if entry is not None and entry.kind is KeywordClass.IGNORED:
        parser.note_parsed_but_ignored(where, head, GLOBAL)


def _ocsp_flag(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    head = args[0]
    value = args[1] if len(args) > 1 else None
    flag = parse_ocsp_update(value)
    if flag is None or len(args) > 2:
        parser.warn(where, head, f"'{head}' : expecting <on|off>", Reason.INVALID_VALUE)
        return
    if head == "ocsp-update.mode":
        parser.global_ = replace(parser.global_, ocsp_update_mode=flag)
    else:
        parser.global_ = replace(parser.global_, ocsp_update_disable=flag)


def _ocsp_delay_line(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    _ocsp_delay(parser, args[0], args[1] if len(args) > 1 else None, where)


def _httpproxy(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    head = args[0]
    value = args[1] if len(args) > 1 else None
    if value is None:
        parser.error(
            where,
            head,
            f"'{head}' expects an address argument.",
            Reason.MISSING_ARGUMENT,
        )
        return
    if len(args) > 2:
        parser.error(where, head, f"'{head}' cannot handle unexpected argument '{args[2]}'.")
        return
    try:
        address = parse_socket_address(value)
    except ValueSyntaxError as exc:
        parser.error(
            where,
            head,
            f"ocsp-update: Failed to parse destination address in '{value}': {exc.message}",
        )
        return
    if address.family is AddressFamily.UNIX:
        parser.error(where, head, f"ocsp-update: Failed to parse destination address in '{value}'")
        return
    parser.global_ = replace(parser.global_, ocsp_update_httpproxy=address)


def _ocsp_limit(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    # staplegate's own: HAProxy fetches one response at a time and has no knob
    head = args[0]
    value = args[1] if len(args) > 1 else None
    number = parser.int_arg(head, value, where, minimum=1, maximum=100_000)
    if number is not None and head == "ocsp-update.maxconn":
        parser.global_ = replace(parser.global_, ocsp_update_maxconn=number)
    elif number is not None:
        parser.global_ = replace(parser.global_, ocsp_update_rate_limit=number)


def _crl_watch(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    # staplegate's own: HAProxy does not fetch CRLs
    head = args[0]
    choices = "|".join(m.value for m in CrlWatchMode)
    try:
        mode = CrlWatchMode(args[1]) if len(args) == 2 else None
    except ValueError:
        mode = None
    if mode is None:
        parser.error(where, head, f"'{head}' expects <{choices}>.", Reason.INVALID_VALUE)
        return
    parser.global_ = replace(parser.global_, ocsp_update_crl_watch=mode)


def _revoked_hook(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    # staplegate's own: a command run on each verified revocation (updater/revoked_hook.py)
    head = args[0]
    command = " ".join(args[1:]).strip()
    if not command:
        parser.error(where, head, f"'{head}' expects a command to run.", Reason.MISSING_ARGUMENT)
        return
    parser.global_ = replace(parser.global_, ocsp_update_revoked_hook=command)


def _shared_store(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    # staplegate's own: a fleet shares staples and single-flight leases through Redis
    head = args[0]
    if len(args) != 2:
        parser.error(
            where, head, f"'{head}' expects one redis:// or rediss:// URL.", Reason.MISSING_ARGUMENT
        )
        return
    problem = shared_store_url_error(args[1])
    if problem is not None:
        parser.error(where, head, f"'{head}': {problem}", Reason.INVALID_VALUE)
        return
    parser.global_ = replace(parser.global_, ocsp_update_shared_store=args[1])


def _shared_store_password_file(
    parser: ParserState, args: list[str], where: SourceLocation
) -> None:
    head = args[0]
    if len(args) != 2:
        parser.error(where, head, f"'{head}' expects a file name.", Reason.MISSING_ARGUMENT)
        return
    parser.global_ = replace(parser.global_, ocsp_update_shared_store_password_file=args[1])


def _responder_url(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    # staplegate's own: one responder for every certificate (an internal mirror)
    head = args[0]
    if len(args) != 2:
        parser.error(where, head, f"'{head}' expects one URL.", Reason.MISSING_ARGUMENT)
        return
    problem = responder_url_error(head, args[1])
    if problem is not None:
        parser.error(where, head, problem, Reason.INVALID_VALUE)
        return
    parser.global_ = replace(parser.global_, ocsp_update_responder_url=args[1])


def _base_dir(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    head = args[0]
    value = args[1] if len(args) > 1 else None
    if value is None or len(args) > 2:
        parser.error(
            where,
            head,
            f"'{head}' expects a directory path as an argument.",
            Reason.MISSING_ARGUMENT,
        )
        return
    attr = head.replace("-", "_")
    if getattr(parser.global_, attr) is not None:
        parser.warn(where, head, f"'{head}' already specified. Continuing.", Reason.DUPLICATE)
        return
    parser.global_ = replace(parser.global_, **field_change(attr, value))


def _single_value(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    head = args[0]
    value = args[1] if len(args) > 1 else None
    if value is None or len(args) > 2:
        parser.error(where, head, f"'{head}' expects one argument.", Reason.MISSING_ARGUMENT)
        return
    parser.global_ = replace(parser.global_, **field_change(head.replace("-", "_"), value))


def _log_line(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    target = read_log(parser, args, where, allow_global=False)
    if target is not None:
        parser.global_ = replace(parser.global_, logs=(*parser.global_.logs, target))


def _count(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    head = args[0]
    number = parser.int_arg(head, args[1] if len(args) > 1 else None, where, minimum=1)
    if number is not None:
        parser.global_ = replace(parser.global_, **field_change(head, number))


def _process_identity(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    """`daemon`, `user`, `group`: stored, then warned about (they change nothing here)."""
    head = args[0]
    value = args[1] if len(args) > 1 else None
    if head == "daemon":
        parser.global_ = replace(parser.global_, daemon=True)
    elif value is None:
        parser.error(where, head, f"'{head}' expects a name.", Reason.MISSING_ARGUMENT)
        return
    else:
        parser.global_ = replace(parser.global_, **field_change(head, value))
    parser.note_parsed_but_ignored(where, head, GLOBAL)


def _hard_stop_after(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    ms = parser.time_arg(args[0], args[1] if len(args) > 1 else None, where)
    if ms is not None:
        parser.global_ = replace(parser.global_, hard_stop_after_ms=ms)


def _default_path(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    """`default-path current|config|parent|origin <path>`: the directory relative file
    paths (certificates, crt-lists, CA/CRL files, pattern and return files) start from."""
    mode = args[1] if len(args) > 1 else ""
    config_dir = os.path.dirname(where.file) or "."
    if mode == "current" and len(args) == 2:
        base: str | None = None
    elif mode == "config" and len(args) == 2:
        base = config_dir
    elif mode == "parent" and len(args) == 2:
        base = os.path.dirname(os.path.abspath(config_dir))
    elif mode == "origin" and len(args) == 3:
        base = args[2]
    else:
        parser.error(
            where,
            "default-path",
            "'default-path' expects 'current', 'config', 'parent' or 'origin <path>'.",
            Reason.INVALID_VALUE,
        )
        return
    parser.global_ = replace(parser.global_, default_path=base)


def _ssl_server_verify(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    """`ssl-server-verify none|required`: the `verify` of server lines that do not say."""
    value = args[1] if len(args) == 2 else None
    if value not in ("none", "required"):
        parser.error(
            where,
            "ssl-server-verify",
            "'ssl-server-verify' expects 'none' or 'required' as argument.",
            Reason.INVALID_VALUE,
        )
        return
    parser.global_ = replace(parser.global_, ssl_server_verify=Verify(value))


def _must_staple_wait(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    # staplegate's own: READY=1 waits this long for every must-staple certificate's staple
    ms = parser.time_arg(args[0], args[1] if len(args) > 1 else None, where)
    if ms is not None:
        parser.global_ = replace(parser.global_, ocsp_update_must_staple_wait_ms=ms)


def _cipher_default(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    head = args[0]
    value = args[1] if len(args) > 1 else None
    if value is None:
        parser.error(
            where,
            head,
            f"'{head}' expects a cipher suite as an argument.",
            Reason.MISSING_ARGUMENT,
        )
        return
    parser.global_ = replace(parser.global_, **field_change(head.replace("-", "_"), value))
    _note_if_ignored(parser, head, where)


def _ssl_default_options(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    head = args[0]
    options = read_ssl_options(parser, args[1:], where, head)
    if options is not None:
        parser.global_ = replace(parser.global_, **field_change(head.replace("-", "_"), options))


def _flag(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    head = args[0]
    parser.global_ = replace(parser.global_, **field_change(head.replace("-", "_"), True))
    _note_if_ignored(parser, head, where)


def _maxhdr(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    value = args[1] if len(args) > 1 else None
    number = parser.int_arg(args[0], value, where, minimum=1, maximum=32767)
    if number is not None:
        parser.global_ = replace(parser.global_, tune_http_maxhdr=number)


def _dh_param(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    head = args[0]
    number = parser.int_arg(head, args[1] if len(args) > 1 else None, where, minimum=1024)
    if number is not None:
        parser.global_ = replace(parser.global_, tune_ssl_default_dh_param=number)
    _note_if_ignored(parser, head, where)


def _httpclient_line(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    _httpclient(parser, args[0], args[1] if len(args) > 1 else None, where)
    _note_if_ignored(parser, args[0], where)


def _stats_limit_line(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    _stats_limit(parser, f"{args[0]} {args[1]}", args[2] if len(args) > 2 else None, where)


def _ocsp_delay(parser: ParserState, kw: str, value: str | None, where: SourceLocation) -> None:
    if value is None:
        parser.error(where, kw, f"'{kw}' expects an integer argument.", Reason.MISSING_ARGUMENT)
        return
    number, exact = c_atoi(value)
    if number < 0:
        parser.error(where, kw, f"'{kw}' expects a positive numeric value.")
        return
    g = parser.global_
    if kw.endswith("mindelay"):
        if number > g.ocsp_update_maxdelay_s:
            parser.error(where, kw, f"'{kw}' can not be higher than tune.ssl.ocsp-update.maxdelay.")
            return
        parser.global_ = replace(g, ocsp_update_mindelay_s=number)
    else:
        if number < g.ocsp_update_mindelay_s:
            parser.error(where, kw, f"'{kw}' can not be lower than tune.ssl.ocsp-update.mindelay.")
            return
        parser.global_ = replace(g, ocsp_update_maxdelay_s=number)
    if not exact:
        parser.warn(
            where,
            kw,
            f"'{kw}' value '{value}' is read as {number} seconds (HAProxy reads this "
            "keyword with atoi, which ignores units and anything after the number); "
            "write a plain number of seconds",
            Reason.QUIRK,
        )


def _httpclient(parser: ParserState, kw: str, value: str | None, where: SourceLocation) -> None:
    if value is None:
        parser.error(where, kw, f"'{kw}' expects an argument.", Reason.MISSING_ARGUMENT)
        return
    hc = parser.global_.httpclient
    if kw == "httpclient.timeout.connect":
        ms = parser.time_arg(kw, value, where)
        if ms is not None:
            hc = replace(hc, timeout_connect_ms=ms)
    elif kw == "httpclient.retries":
        number = parser.int_arg(kw, value, where, minimum=0)
        if number is not None:
            hc = replace(hc, retries=number)
    elif kw == "httpclient.resolvers.prefer":
        if value not in ("ipv4", "ipv6"):
            parser.error(where, kw, f"'{kw}' : expects 'ipv4' or 'ipv6'.")
            return
        hc = replace(hc, resolvers_prefer=value)
    elif kw == "httpclient.resolvers.disabled":
        flag = parse_ocsp_update(value)
        if flag is None:
            parser.error(where, kw, f"'{kw}' : expects 'on' or 'off'.")
            return
        hc = replace(hc, resolvers_disabled=flag)
    elif kw == "httpclient.ssl.verify":
        if value not in ("none", "required"):
            parser.error(where, kw, f"'{kw}' : expects 'none' or 'required'.")
            return
        hc = replace(hc, ssl_verify=Verify(value))
        if value == "none":
            parser.warn(
                where,
                kw,
                parsed_ignored_message(f"{kw} none", "https responders are always verified"),
            )
    else:
        hc = replace(hc, ssl_ca_file=value)
        if value != "@system-ca":
            parser.warn(
                where,
                kw,
                parsed_ignored_message(kw, "https responders are verified against the system CAs"),
            )
    parser.global_ = replace(parser.global_, httpclient=hc)


def _extra_files(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    kinds: set[str] = set()
    if len(args) < 2:
        parser.error(
            where,
            args[0],
            "'ssl-load-extra-files' expects at least one argument.",
            Reason.MISSING_ARGUMENT,
        )
        return
    for value in args[1:]:
        if value == "all":
            kinds |= EXTRA_FILE_KINDS
        elif value == "none":
            kinds = set()
        elif value in EXTRA_FILE_KINDS:
            kinds.add(value)
        else:
            parser.error(
                where,
                args[0],
                f"ssl-load-extra-files: unknown argument '{value}', allowed values are "
                "'none', 'all', 'bundle', 'sctl', 'ocsp', 'issuer' and 'key'.",
            )
            return
    parser.global_ = replace(parser.global_, ssl_load_extra_files=frozenset(kinds))


def _stats_limit(parser: ParserState, kw: str, value: str | None, where: SourceLocation) -> None:
    """`stats timeout <time>` and `stats maxconn <n>`, checked as HAProxy's cli.c does."""
    if kw == "stats timeout":
        ms = parser.time_arg(kw, value, where)
        if ms is None:
            return
        if ms == 0:
            parser.error(where, kw, f"'{kw}' expects a positive value")
            return
        parser.global_ = replace(parser.global_, stats_timeout_ms=ms)
        return
    number, _exact = c_atoi(value or "")
    if number <= 0:
        parser.error(where, kw, f"'{kw}' expects a positive value")
        return
    parser.global_ = replace(parser.global_, stats_maxconn=number)


def _stats_socket(parser: ParserState, args: list[str], where: SourceLocation) -> None:
    kw = "stats socket"
    if len(args) < 3:
        parser.error(
            where,
            kw,
            "'stats socket' expects an address (UNIX path or ipv4@addr:port).",
            Reason.MISSING_ARGUMENT,
        )
        return
    try:
        address = parse_socket_address(args[2])
    except ValueSyntaxError as exc:
        parser.error(where, kw, f"'stats socket' : {exc.message}")
        return
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    level = StatsLevel.OPERATOR
    expose = False
    maxconn: int | None = None
    i = 3
    while i < len(args):
        opt = args[i]
        val = args[i + 1] if i + 1 < len(args) else None
        if opt == "mode":
            if val is None or not re.fullmatch(r"[0-7]{1,4}", val):
                parser.error(where, kw, "'stats socket' : 'mode' expects an octal mode.")
                return
            mode = int(val, 8)
            i += 2
        elif opt == "level":
            if val not in ("user", "operator", "admin"):
                parser.error(
                    where,
                    kw,
                    "'stats socket' : 'level' only supports 'user', 'operator', and 'admin'",
                )
                return
            level = StatsLevel.parse(val)
            i += 2
        elif opt == "expose-fd":
            if val != "listeners":
                parser.error(where, kw, "'stats socket' : 'expose-fd' only supports 'listeners'")
                return
            expose = True
            i += 2
        elif opt in ("user", "group", "uid", "gid"):
            owner = _socket_owner(opt, val)
            if isinstance(owner, str):
                parser.error(where, kw, f"'stats socket' : {owner}")
                return
            if opt in ("user", "uid"):
                uid = owner
            else:
                gid = owner
            i += 2
        elif opt == "maxconn":
            if val is None:
                parser.error(where, kw, "'stats socket' : 'maxconn' expects an argument.")
                return
            number, _exact = c_atoi(val)  # HAProxy's bind_parse_maxconn reads it with atol
            if number < 0:
                parser.error(
                    where,
                    kw,
                    f"'stats socket' : 'maxconn' : invalid value {number}, must be >= 0",
                )
                return
            maxconn = number or None  # 0: no cap of its own, only `stats maxconn`
            i += 2
        elif opt in ("name", "process", "thread"):
            if val is None:
                parser.error(where, kw, f"'stats socket' : '{opt}' expects an argument.")
                return
            parser.warn(
                where,
                kw,
                ignored_message(
                    f"stats socket {opt}",
                    "one runtime socket serves every worker",
                ),
            )
            i += 2
        elif opt in ("severity-output", "accept-netscaler-cip"):
            i += 2
            parser.warn(
                where,
                kw,
                ignored_message(f"stats socket {opt}", "it only changes output style"),
            )
        else:
            parser.error(
                where, kw, f"'stats socket' unknown keyword '{opt}'.", Reason.UNKNOWN_KEYWORD
            )
            return
    if (uid is not None or gid is not None) and address.family is not AddressFamily.UNIX:
        parser.warn(
            where,
            kw,
            "'stats socket' : 'user'/'group' apply to UNIX sockets only; ignored here.",
        )
        uid = gid = None
    socket = StatsSocket(where, address, mode, level, expose, uid=uid, gid=gid, maxconn=maxconn)
    parser.global_ = replace(parser.global_, stats_sockets=(*parser.global_.stats_sockets, socket))


def _socket_owner(option: str, value: str | None) -> int | str:
    """The uid/gid that `user|uid|group|gid VALUE` names, or the error message."""
    if value is None:
        return f"'{option}' expects an argument."
    if option in ("uid", "gid"):
        if not value.isdigit():
            return f"'{option}' expects a numeric id, got '{value}'."
        return int(value)
    try:
        if option == "user":
            return pwd.getpwnam(value).pw_uid
        return grp.getgrnam(value).gr_gid
    except KeyError:
        kind = "user" if option == "user" else "group"
        return f"unknown {kind} name '{value}'."


# every keyword `global` knows; a keyword with a handler is read, the others are classified
GLOBAL: KeywordTable[Handler] = KeywordTable(
    [
        supported("ocsp-update.mode", _ocsp_flag),
        supported("ocsp-update.mindelay", _ocsp_delay_line),
        supported("ocsp-update.maxdelay", _ocsp_delay_line),
        supported("ocsp-update.httpproxy", _httpproxy),
        supported("ocsp-update.disable", _ocsp_flag),
        supported("ocsp-update.maxconn", _ocsp_limit),
        supported("ocsp-update.rate-limit", _ocsp_limit),
        supported("ocsp-update.crl-watch", _crl_watch),
        supported("ocsp-update.revoked-hook", _revoked_hook),
        supported("ocsp-update.responder-url", _responder_url),
        supported("ocsp-update.must-staple-wait", _must_staple_wait),
        supported("ocsp-update.shared-store", _shared_store),
        supported("ocsp-update.shared-store-password-file", _shared_store_password_file),
        supported("tune.ssl.ocsp-update.mindelay", _ocsp_delay_line),
        supported("tune.ssl.ocsp-update.maxdelay", _ocsp_delay_line),
        supported("crt-base", _base_dir),
        supported("key-base", _base_dir),
        supported("ca-base", _base_dir),
        supported("issuers-chain-path", _single_value),
        supported("stats socket", _stats_socket),
        supported("stats timeout", _stats_limit_line),
        supported("stats maxconn", _stats_limit_line),
        supported("log", _log_line),
        supported("log-tag", _single_value),
        supported("nbthread", _count),
        supported("maxconn", _count),
        supported("pidfile", _single_value),
        ignored(
            "daemon",
            "staplegate runs in the foreground under its supervisor",
            _process_identity,
        ),
        ignored(
            "user",
            "start staplegate as the intended user instead",
            _process_identity,
        ),
        ignored(
            "group",
            "start staplegate with the intended group instead",
            _process_identity,
        ),
        supported("hard-stop-after", _hard_stop_after),
        supported("ssl-default-bind-ciphers", _cipher_default),
        supported("ssl-default-bind-ciphersuites", _cipher_default),
        supported("ssl-default-bind-options", _ssl_default_options),
        supported("ssl-default-server-ciphers", _cipher_default),
        supported("ssl-server-verify", _ssl_server_verify),
        supported("default-path", _default_path),
        supported("external-check", _flag),
        ignored(
            "ssl-default-server-ciphersuites",
            "Python's ssl module cannot restrict TLS 1.3 suites: server connections "
            "offer OpenSSL's defaults, all of them AEAD",
            _cipher_default,
        ),
        supported("ssl-default-server-options", _ssl_default_options),
        supported("ssl-load-extra-files", _extra_files),
        supported("ssl-load-extra-del-ext", _flag),
        ignored(
            "ssl-skip-self-issued-ca",
            "each certificate's chain is sent as its file holds it",
            _flag,
        ),
        supported("ssl-dh-param-file", _single_value),
        ignored(
            "tune.ssl.default-dh-param",
            "without ssl-dh-param-file, OpenSSL sizes the DHE group to the certificate's key",
            _dh_param,
        ),
        supported("tune.http.maxhdr", _maxhdr),
        supported("zero-warning", _flag),
        supported("httpclient.timeout.connect", _httpclient_line),
        supported("httpclient.retries", _httpclient_line),
        ignored(
            "httpclient.resolvers.prefer",
            "OCSP fetches use the system resolver's order",
            _httpclient_line,
        ),
        ignored(
            "httpclient.resolvers.disabled",
            "OCSP fetches use the system resolver",
            _httpclient_line,
        ),
        supported("httpclient.ssl.verify", _httpclient_line),
        supported("httpclient.ssl.ca-file", _httpclient_line),
        ignored("chroot", "staplegate does not chroot"),
        ignored("uid", "start staplegate as the intended user instead"),
        ignored("gid", "start staplegate with the intended group instead"),
        ignored("log-send-hostname", "syslog headers carry the host name staplegate chooses"),
        ignored("node", "it only labels statistics"),
        ignored("description", "it only labels statistics"),
        ignored("master-worker", "staplegate always runs a master and workers"),
        ignored("ulimit-n", "set file descriptor limits in the service manager"),
        ignored("fd-hard-limit", "set file descriptor limits in the service manager"),
        ignored("cpu-map", "workers are not pinned to CPUs"),
        ignored("cpu-policy", "workers are not pinned to CPUs"),
        ignored("thread-groups", "workers are processes"),
        ignored("numa-cpu-mapping", "workers are not pinned to CPUs"),
        ignored("set-dumpable", "it only affects core dumps"),
        ignored("insecure-fork-wanted", "it only affects Lua and external checks"),
        ignored("strict-limits", "it only affects startup limits"),
        ignored("mworker-max-reloads", "reloads are not counted"),
        ignored("quiet", "it only affects startup output"),
        ignored("busy-polling", "it is an event-loop tuning"),
        ignored("noepoll", "it is an event-loop tuning"),
        ignored("nopoll", "it is an event-loop tuning"),
        ignored("nosplice", "it is an I/O tuning"),
        ignored("nogetaddrinfo", "it is a resolver tuning"),
        ignored("noreuseport", "it is a socket tuning"),
        ignored("maxpipes", "it is an I/O tuning"),
        ignored("maxzlibmem", "compression is not supported"),
        ignored("spread-checks", "health checks are spread by staplegate's own rules"),
        ignored("max-spread-checks", "health checks are spread by staplegate's own rules"),
        ignored("server-state-base", "server state is not persisted"),
        ignored("server-state-file", "server state is not persisted"),
        ignored("ssl-mode-async", "it is an engine tuning"),
        ignored("localpeer", "peers are not supported"),
        ignored("profiling.tasks", "it is a debugging aid"),
        ignored("profiling.memory", "it is a debugging aid"),
        ignored("expose-experimental-directives", "no experimental directive is supported"),
        ignored("close-spread-time", "connections close when their drain deadline expires"),
        ignored("grace", "reloads drain until hard-stop-after"),
        ignored("httpclient.resolvers.id", "OCSP fetches use the system resolver"),
        ignored("unix-bind", "UNIX listeners are not supported"),
        ignored("cluster-secret", "QUIC is not supported"),
        ignored("pp2-never-send-local", "it only affects PROXY v2 health checks"),
        ignored("h1-accept-payload-with-any-method", "it only relaxes request parsing"),
        *refused_all(
            [
                "51degrees-data-file",
                "deviceatlas-json-file",
                "h1-case-adjust",
                "h1-case-adjust-file",
                "h2-workaround-bogus-websocket-clients",
                "httpclient.ssl.verify-hostname",
                "lua-load",
                "lua-load-per-thread",
                "lua-prepend-path",
                "maxcompcpuusage",
                "maxcomprate",
                "maxconnrate",
                "maxsessrate",
                "maxsslconn",
                "maxsslrate",
                "nbproc",
                "presetenv",
                "resetenv",
                "set-var",
                "set-var-fmt",
                "setenv",
                "ssl-default-bind-client-sigalgs",
                "ssl-default-bind-curves",
                "ssl-default-bind-sigalgs",
                "ssl-default-server-curves",
                "ssl-engine",
                "ssl-propquery",
                "ssl-provider",
                "ssl-provider-path",
                "ssl-security-level",
                "stats bind-process",
                "tune.ssl.ocsp-update.mode",
                "unsetenv",
                "wurfl-data-file",
            ]
        ),
    ],
    ignored_prefixes={"tune.": "performance tunings do not change traffic"},
)
