"""HAProxy's output formats for the runtime API: field lists, dates, names (pure).

Field names and their order come from HAProxy 3.2's stats.c / stats-proxy.c (`show info`,
`show stat` CSV header "# a,b,...,-,extra,..."), `show servers state` version 1, and the
OpenSSL print formats HAProxy uses for certificates (dates, one-line names). Our own OCSP
counters are appended where HAProxy appends module counters: after the `-` column of
`show stat` and after the last `show info` field.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Mapping, Sequence

from cryptography import x509

from staplegate.certs.names import OPENSSL_SHORT_NAMES

#: `show info` fields in HAProxy 3.2 order (stats.c stat_cols_info).
INFO_FIELDS: tuple[str, ...] = (
    "Name", "Version", "Release_date", "Nbthread", "Nbproc", "Process_num", "Pid", "Uptime",
    "Uptime_sec", "Start_time_sec", "Memmax_MB", "Memmax_bytes", "PoolAlloc_MB",
    "PoolAlloc_bytes", "PoolUsed_MB", "PoolUsed_bytes", "PoolFailed", "Ulimit-n", "Maxsock",
    "Maxconn", "Hard_maxconn", "CurrConns", "CumConns", "CumReq", "MaxSslConns",
    "CurrSslConns", "CumSslConns", "Maxpipes", "PipesUsed", "PipesFree", "ConnRate",
    "ConnRateLimit", "MaxConnRate", "SessRate", "SessRateLimit", "MaxSessRate", "SslRate",
    "SslRateLimit", "MaxSslRate", "SslFrontendKeyRate", "SslFrontendMaxKeyRate",
    "SslFrontendSessionReuse_pct", "SslBackendKeyRate", "SslBackendMaxKeyRate",
    "SslCacheLookups", "SslCacheMisses", "CompressBpsIn", "CompressBpsOut",
    "CompressBpsRateLim", "ZlibMemUsage", "MaxZlibMemUsage", "Tasks", "Run_queue", "Idle_pct",
    "node", "description", "Stopping", "Jobs", "Unstoppable Jobs", "Listeners", "ActivePeers",
    "ConnectedPeers", "DroppedLogs", "BusyPolling", "FailedResolutions", "TotalBytesOut",
    "TotalSplicedBytesOut", "BytesOutRate", "DebugCommandsIssued", "CumRecvLogs", "Build info",
    "Tainted", "TotalWarnings", "MaxconnReached", "BootTime_ms", "Niced_tasks", "CurrStreams",
    "CumStreams", "BlockedTrafficWarnings",
)  # fmt: skip

#: staplegate's `show info` additions (printed after HAProxy's fields).
OCSP_INFO_FIELDS: tuple[str, ...] = (
    "OcspEntries",
    "OcspStapled",
    "OcspUpdateSuccesses",
    "OcspUpdateFailures",
    "OcspRevoked",
    "OcspMustStapleUnstapled",
)

#: `show stat` static columns, HAProxy 3.2 order (as its CSV header prints them).
STAT_FIELDS: tuple[str, ...] = (
    "pxname", "svname", "qcur", "qmax", "scur", "smax", "slim", "stot", "bin", "bout", "dreq",
    "dresp", "ereq", "econ", "eresp", "wretr", "wredis", "status", "weight", "act", "bck",
    "chkfail", "chkdown", "lastchg", "downtime", "qlimit", "pid", "iid", "sid", "throttle",
    "lbtot", "tracked", "type", "rate", "rate_lim", "rate_max", "check_status", "check_code",
    "check_duration", "hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx",
    "hrsp_other", "hanafail", "req_rate", "req_rate_max", "req_tot", "cli_abrt", "srv_abrt",
    "comp_in", "comp_out", "comp_byp", "comp_rsp", "lastsess", "last_chk", "last_agt",
    "qtime", "ctime", "rtime", "ttime", "agent_status", "agent_code", "agent_duration",
    "check_desc", "agent_desc", "check_rise", "check_fall", "check_health", "agent_rise",
    "agent_fall", "agent_health", "addr", "cookie", "mode", "algo", "conn_rate",
    "conn_rate_max", "conn_tot", "intercepted", "dcon", "dses", "wrew", "connect", "reuse",
    "cache_lookups", "cache_hits", "srv_icur", "src_ilim", "qtime_max", "ctime_max",
    "rtime_max", "ttime_max", "eint", "idle_conn_cur", "safe_conn_cur", "used_conn_cur",
    "need_conn_est", "uweight", "agg_server_status", "agg_server_check_status",
    "agg_check_status", "srid", "sess_other", "h1sess", "h2sess", "h3sess", "req_other",
    "h1req", "h2req", "h3req", "proto",
)  # fmt: skip

#: staplegate's module columns after `-`: filled on FRONTEND rows, empty elsewhere.
OCSP_STAT_FIELDS: tuple[str, ...] = (
    "ocsp_certs",
    "ocsp_stapled",
    "ocsp_update_ok",
    "ocsp_update_err",
    "ocsp_revoked",
)

#: Columns HAProxy shows only at operator/admin level (or with show-legends).
LEGEND_FIELDS = frozenset({"addr", "cookie", "algo"})

SERVERS_STATE_HEADER = (
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
    "srv_iweight srv_time_since_last_change srv_check_status srv_check_result "
    "srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id "
    "srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr "
    "srv_agent_port"
)

OCSP_UPDATES_HEADER = (
    "OCSP Certid | Path | Next Update | Last Update | Successes | Failures | "
    "Last Update Status | Last Update Status (str)"
)

CRL_WATCH_HEADER = (
    "Path | CRL URL | Status | Reason | Revocation Time | This Update | Next Update | "
    "Next Refresh | Last Success | Successes | Failures | Last Result"
)

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def openssl_date(when: dt.datetime) -> str:
    """OpenSSL's ASN1_TIME_print form: `Dec  1 13:23:13 2026 GMT`."""
    when = when.astimezone(dt.UTC)
    return f"{_MONTHS[when.month - 1]} {when.day:2d} {when:%H:%M:%S} {when.year} GMT"


def log_date(when: dt.datetime) -> str:
    """HAProxy's `dd/Mon/yyyy:HH:MM:SS +zzzz`, in the process's local time zone."""
    local = when.astimezone()
    return f"{local.day:02d}/{_MONTHS[local.month - 1]}/{local:%Y:%H:%M:%S %z}"


def oneline_name(name: x509.Name) -> str:
    """OpenSSL's X509_NAME_oneline: `/C=FR/O=Example/CN=www.example.test` (DER order)."""
    parts = []
    for rdn in name.rdns:
        for attribute in rdn:
            key = OPENSSL_SHORT_NAMES.get(attribute.oid, attribute.oid.dotted_string)
            value = attribute.value
            text = value if isinstance(value, str) else value.hex()
            parts.append(f"/{key}={text}")
    return "".join(parts)


def san_line(certificate: x509.Certificate) -> str:
    """`DNS:a.example, DNS:b.example, IP Address:...` as HAProxy prints SANs."""
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ""
    items: list[str] = []
    for general in sans:
        if isinstance(general, x509.DNSName):
            items.append(f"DNS:{general.value}")
        elif isinstance(general, x509.IPAddress):
            items.append(f"IP Address:{general.value}")
        elif isinstance(general, x509.RFC822Name):
            items.append(f"email:{general.value}")
        elif isinstance(general, x509.UniformResourceIdentifier):
            items.append(f"URI:{general.value}")
    return ", ".join(items)


def serial_hex(serial: int) -> str:
    """Uppercase hex of the DER INTEGER content bytes (`0A1B2C3D`)."""
    length = max(1, (serial.bit_length() + 8) // 8)  # room for the sign bit, like DER
    return serial.to_bytes(length, "big", signed=True).hex().upper()


def uptime_text(seconds: int) -> str:
    """HAProxy's `Uptime:` form, `0d 0h01m05s`."""
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}d {hours}h{minutes:02d}m{secs:02d}s"


def csv_field(value: str | int | None) -> str:
    """HAProxy's CSV encoding: quote when a comma, quote or newline is inside."""
    if value is None:
        return ""
    text = str(value)
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def stat_csv(
    rows: Sequence[Mapping[str, str | int | None]], *, extra: Sequence[str] = OCSP_STAT_FIELDS
) -> str:
    """The whole `show stat` answer: header, one line per row, each field ending with `,`."""
    header = "# " + "".join(f"{name}," for name in (*STAT_FIELDS, "-", *extra)) + "\n"
    lines = [header]
    for row in rows:
        values = [csv_field(row.get(name)) for name in STAT_FIELDS]
        values.append("-")
        values.extend(csv_field(row.get(name)) for name in extra)
        lines.append("".join(f"{value}," for value in values) + "\n")
    return "".join(lines)


def info_text(values: Mapping[str, str | int | None]) -> str:
    """`Name: value` lines in HAProxy's order, then ours; absent fields are not printed."""
    lines = []
    known = set(INFO_FIELDS)
    for name in INFO_FIELDS:
        value = values.get(name)
        if value is not None:
            lines.append(f"{name}: {value}\n")
    for name in OCSP_INFO_FIELDS:
        value = values.get(name)
        if value is not None:
            lines.append(f"{name}: {value}\n")
    for name, value in values.items():  # anything else a backend adds, after ours
        if name not in known and name not in OCSP_INFO_FIELDS and value is not None:
            lines.append(f"{name}: {value}\n")
    return "".join(lines)


def ocsp_response_text(der: bytes, *, openssl: str = "openssl", timeout: float = 10.0) -> str:
    """OpenSSL's OCSP_RESPONSE_print dump (as HAProxy prints it), via `openssl ocsp`.

    HAProxy calls the same OpenSSL function in-process; we run the openssl binary so the text
    is byte-for-byte OpenSSL's. Every empty line becomes a line with one space, as HAProxy
    does, so the answer holds no empty line before its end. Blocking: call it in a thread.
    """
    result = subprocess.run(
        [openssl, "ocsp", "-respin", "/dev/stdin", "-resp_text", "-noverify"],
        input=der,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        message = result.stderr.decode("utf-8", errors="replace").strip().splitlines()
        raise ValueError(message[0] if message else "openssl could not print the response")
    text = result.stdout.decode("utf-8", errors="replace")
    lines = [line if line else " " for line in text.splitlines()]
    return "\n".join(lines) + "\n" if lines else ""
