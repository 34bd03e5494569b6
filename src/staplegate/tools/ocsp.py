"""`staplegate ocsp …`: an operator's OCSP tools — one verified fetch, a readable dump, a verdict.

`fetch CERT` does exactly what the running updater does for one certificate, once: the same
`CertificateMachine` builds the request and judges the answer, the same `OcspHttpClient`
sends it, and the result is printed as the `<OCSP-UPDATE>` line the daemon would log. `show`
prints a response the way `openssl ocsp -respin F -resp_text` does; `verify` runs the checks
every staple candidate goes through and names the first one that fails.

Exit status: 0 when the response verifies (`show`: when it could be read), 1 when a fetch
or a check failed, 2 when the inputs cannot be used (missing file, no issuer, no OCSP URI).
Time comes from `SystemClock`, so `STAPLEGATE_CLOCK_OFFSET` applies here too.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import enum
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509 import ocsp

from staplegate.certs.loader import issued_by, ocsp_uri
from staplegate.clock import Clock, SystemClock
from staplegate.fetch.client import USER_AGENT, FetchResult, FetchSettings, OcspHttpClient
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.logline import UpdateStatus
from staplegate.ocsp.machine import (
    CertificateMachine,
    Fetch,
    Log,
    LogLevel,
    Start,
    Tick,
    UpdateRequested,
)
from staplegate.ocsp.request import OcspUriError, build_request, http_request_for
from staplegate.ocsp.verify import (
    WITHDRAWAL_MARGIN_S,
    CertStatus,
    VerificationError,
    VerifiedStaple,
    verify_response,
)
from staplegate.store.atomic import write_sidecar_atomically
from staplegate.updater.driver import fetch_event

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INPUT = 2


class InputProblem(enum.Enum):
    """Why the command could not even start its work (exit status 2)."""

    CERT_UNREADABLE = "cert-unreadable"
    NO_CERTIFICATE = "no-certificate"
    ISSUER_UNREADABLE = "issuer-unreadable"
    NOT_THE_ISSUER = "not-the-issuer"
    NO_ISSUER = "no-issuer"
    NO_OCSP_URI = "no-ocsp-uri"
    RESPONSE_UNREADABLE = "response-unreadable"
    OUTPUT_UNWRITABLE = "output-unwritable"


class InputError(Exception):
    """A file the command needs is missing or unusable; `reason`, `path` and `hint` say more."""

    def __init__(self, reason: InputProblem, path: Path | None, message: str, hint: str) -> None:
        self.reason = reason
        self.path = path
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.args[0]}; {self.hint}"


@dataclass(frozen=True)
class CertificateInput:
    """The certificate an OCSP question is about, and the issuer its CertId is built from."""

    path: Path
    certificate: x509.Certificate
    issuer: x509.Certificate
    issuer_origin: str
    """Where the issuer came from, for messages: `--issuer F`, `chain of F`, `F.issuer`."""

    @property
    def cert_id(self) -> CertId:
        return CertId.for_certificate(self.certificate, self.issuer)

    @property
    def ocsp_uri(self) -> str | None:
        return ocsp_uri(self.certificate)


# --- loading inputs ---


def _read(path: Path, reason: InputProblem, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(
            reason, path, f"cannot read {what} '{path}': {exc.strerror or exc}", "check the path"
        ) from exc


def _certificates(
    data: bytes, path: Path, reason: InputProblem, what: str
) -> list[x509.Certificate]:
    """Every certificate in a PEM file (a HAProxy bundle: leaf, key, chain) or one DER one."""
    try:
        if b"-----BEGIN" in data:
            return list(x509.load_pem_x509_certificates(data))
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise InputError(
            reason,
            path,
            f"'{path}' holds no readable {what}",
            "give a PEM (or DER) certificate file, e.g. a HAProxy bundle",
        ) from exc


def load_certificate_input(cert_path: Path, issuer_path: Path | None) -> CertificateInput:
    """The first certificate of `cert_path` and its issuer.

    The issuer is `--issuer` when given (it must have issued the certificate), else the first
    chain certificate in the file that issued it, else the `<cert>.issuer` sidecar (HAProxy's
    order after the explicit choice).
    """
    certificates = _certificates(
        _read(cert_path, InputProblem.CERT_UNREADABLE, "certificate file"),
        cert_path,
        InputProblem.NO_CERTIFICATE,
        "certificate",
    )
    if not certificates:
        raise InputError(
            InputProblem.NO_CERTIFICATE,
            cert_path,
            f"'{cert_path}' holds no certificate",
            "give a PEM certificate or a HAProxy bundle",
        )
    leaf, chain = certificates[0], certificates[1:]
    subject = leaf.subject.rfc4514_string()
    if issuer_path is not None:
        issuer = _issuer_in(issuer_path, leaf)
        if issuer is None:
            raise InputError(
                InputProblem.NOT_THE_ISSUER,
                issuer_path,
                f"no certificate in '{issuer_path}' issued {subject!r}",
                "give the certificate of the CA that signed it",
            )
        return CertificateInput(cert_path, leaf, issuer, f"--issuer {issuer_path}")
    for candidate in chain:
        if issued_by(leaf, candidate):
            return CertificateInput(cert_path, leaf, candidate, f"chain of {cert_path}")
    sidecar = Path(f"{cert_path}.issuer")
    if sidecar.exists():
        issuer = _issuer_in(sidecar, leaf)
        if issuer is not None:
            return CertificateInput(cert_path, leaf, issuer, str(sidecar))
        raise InputError(
            InputProblem.NOT_THE_ISSUER,
            sidecar,
            f"'{sidecar}' does not hold the issuer of {subject!r}",
            "put the issuing CA's certificate in it, or give --issuer",
        )
    raise InputError(
        InputProblem.NO_ISSUER,
        cert_path,
        f"no issuer for {subject!r}: not in the file's chain and no '{sidecar}'",
        "append the intermediate to the file, create the .issuer sidecar, or give --issuer",
    )


def _issuer_in(path: Path, leaf: x509.Certificate) -> x509.Certificate | None:
    """The first certificate in the PEM file `path` that issued `leaf`, if any."""
    found = _certificates(
        _read(path, InputProblem.ISSUER_UNREADABLE, "issuer file"),
        path,
        InputProblem.ISSUER_UNREADABLE,
        "issuer certificate",
    )
    return next((c for c in found if issued_by(leaf, c)), None)


def _read_response(path: Path) -> bytes:
    return _read(path, InputProblem.RESPONSE_UNREADABLE, "OCSP response file")


# --- fetch ---


@dataclass(frozen=True)
class FetchOutcome:
    """One `staplegate ocsp fetch`: the daemon's log line, and the staple when it verified."""

    update_line: str
    status: UpdateStatus
    staple: VerifiedStaple | None
    error: VerificationError | None
    """The specific check that failed, when the responder answered but the answer was refused."""
    fetch: FetchResult
    body: bytes | None

    @property
    def ok(self) -> bool:
        return self.staple is not None


async def fetch_once(
    source: CertificateInput,
    *,
    url: str | None = None,
    settings: FetchSettings | None = None,
    clock: Clock | None = None,
) -> FetchOutcome:
    """Fetch and verify one response for `source` exactly as the updater would.

    Raises InputError(NO_OCSP_URI) when there is no usable URI (none in the AIA and no `url`).
    """
    clock = clock or SystemClock()
    uri = url if url is not None else source.ocsp_uri
    try:
        http_request_for(uri or "", build_request(source.cert_id), user_agent=USER_AGENT)
    except OcspUriError as exc:
        raise InputError(
            InputProblem.NO_OCSP_URI,
            source.path,
            str(exc).split(";")[0],
            "give the responder with --url http://HOST[:PORT]/PATH",
        ) from exc
    machine = CertificateMachine(
        certificate=source.certificate,
        issuer=source.issuer,
        path=str(source.path),
        uri=uri,
        auto_update=False,
        user_agent=USER_AGENT,
    )
    now = clock.now()
    machine.handle(Start(now))
    machine.handle(UpdateRequested(now))
    fetch = next(a for a in machine.handle(Tick(now)) if isinstance(a, Fetch))
    client = OcspHttpClient(settings or FetchSettings())
    try:
        result = await client.send(fetch.request)
    finally:
        await client.close()
    checked_at = clock.now()
    actions = machine.handle(fetch_event(result, checked_at))
    line = next(
        (a.message for a in actions if isinstance(a, Log) and a.level is LogLevel.NOTICE), ""
    )
    error = None
    staple = machine.servable_staple(checked_at)
    if staple is None and result.body is not None:
        try:
            verify_response(
                result.body,
                certificate=source.certificate,
                issuer=source.issuer,
                now=checked_at,
                skew=machine.skew,
            )
        except VerificationError as exc:
            error = exc
    return FetchOutcome(
        update_line=line,
        status=machine.counters.last_status,
        staple=staple,
        error=error,
        fetch=result,
        body=result.body,
    )


# --- human-readable output ---


def openssl_time(when: dt.datetime) -> str:
    """OpenSSL's ASN1_TIME_print form: `Dec  1 13:23:13 2026 GMT`."""
    utc = when.astimezone(dt.UTC)
    return f"{utc:%b} {utc.day:2d} {utc:%H:%M:%S} {utc.year} GMT"


def openssl_name(name: x509.Name) -> str:
    """X509_NAME_print_ex's one-line form as `openssl ocsp -resp_text` shows it: `CN = x`."""
    return ", ".join(f"{a.rfc4514_attribute_name} = {a.value!s}" for a in name)


def _serial_hex(serial: int) -> str:
    """The INTEGER's content bytes in uppercase hex (`00` first when the top bit is set)."""
    return serial.to_bytes(serial.bit_length() // 8 + 1, "big", signed=False).hex().upper()


_REASON_CODES: dict[x509.ReasonFlags, int] = {
    x509.ReasonFlags.unspecified: 0,
    x509.ReasonFlags.key_compromise: 1,
    x509.ReasonFlags.ca_compromise: 2,
    x509.ReasonFlags.affiliation_changed: 3,
    x509.ReasonFlags.superseded: 4,
    x509.ReasonFlags.cessation_of_operation: 5,
    x509.ReasonFlags.certificate_hold: 6,
    x509.ReasonFlags.remove_from_crl: 8,
    x509.ReasonFlags.privilege_withdrawn: 9,
    x509.ReasonFlags.aa_compromise: 10,
}

_STATUS_NAMES: dict[ocsp.OCSPResponseStatus, str] = {
    ocsp.OCSPResponseStatus.SUCCESSFUL: "successful",
    ocsp.OCSPResponseStatus.MALFORMED_REQUEST: "malformedrequest",
    ocsp.OCSPResponseStatus.INTERNAL_ERROR: "internalerror",
    ocsp.OCSPResponseStatus.TRY_LATER: "trylater",
    ocsp.OCSPResponseStatus.SIG_REQUIRED: "sigrequired",
    ocsp.OCSPResponseStatus.UNAUTHORIZED: "unauthorized",
}


def _hex_dump(data: bytes, indent: str, per_line: int = 18) -> list[str]:
    pairs = [f"{b:02x}" for b in data]
    rows = [pairs[i : i + per_line] for i in range(0, len(pairs), per_line)]
    return [
        indent + ":".join(row) + (":" if i < len(rows) - 1 else "") for i, row in enumerate(rows)
    ]


def format_response_text(der: bytes) -> str:
    """The response as `openssl ocsp -respin F -resp_text -noverify` prints it (abridged).

    Embedded certificates are summarized (subject, issuer, serial, validity, OCSP signing
    EKU) rather than dumped in full. Raises ValueError when `der` is not an OCSPResponse,
    or when a part of it does not parse: cryptography parses names and certificates only
    when they are read, and raises ValueError or TypeError from there.
    """
    try:
        return _response_text(der)
    except ValueError:
        raise
    except Exception as exc:  # untrusted bytes: any parse failure is "not readable"
        raise ValueError(f"malformed response: {type(exc).__name__}: {exc}") from exc


def _responder_text(response: ocsp.OCSPResponse) -> str:
    try:
        name = response.responder_name
        if name is not None:
            return openssl_name(name)
    except Exception as exc:  # lazy parsing: see format_response_text
        raise ValueError(f"malformed ResponderID name: {type(exc).__name__}: {exc}") from exc
    return (response.responder_key_hash or b"").hex().upper()


def _hash_name(single: ocsp.OCSPSingleResponse) -> str:
    try:
        return single.hash_algorithm.name
    except UnsupportedAlgorithm as exc:  # e.g. MD5: shown, then refused by `verify`
        return f"unsupported ({exc})"


def _response_text(der: bytes) -> str:
    response = ocsp.load_der_ocsp_response(der)
    status = response.response_status
    lines = [
        "OCSP Response Data:",
        f"    OCSP Response Status: {_STATUS_NAMES[status]} (0x{status.value:x})",
    ]
    if status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return "\n".join(lines) + "\n"
    responder = _responder_text(response)
    lines += [
        "    Response Type: Basic OCSP Response",
        "    Version: 1 (0x0)",
        f"    Responder Id: {responder}",
        f"    Produced At: {openssl_time(response.produced_at_utc)}",
        "    Responses:",
    ]
    for single in response.responses:
        lines += [
            "    Certificate ID:",
            f"      Hash Algorithm: {_hash_name(single)}",
            f"      Issuer Name Hash: {single.issuer_name_hash.hex().upper()}",
            f"      Issuer Key Hash: {single.issuer_key_hash.hex().upper()}",
            f"      Serial Number: {_serial_hex(single.serial_number)}",
            f"    Cert Status: {single.certificate_status.name.lower()}",
        ]
        if single.certificate_status is ocsp.OCSPCertStatus.REVOKED:
            revoked_at = single.revocation_time_utc
            if revoked_at is not None:
                lines.append(f"    Revocation Time: {openssl_time(revoked_at)}")
            reason = single.revocation_reason
            if reason is not None:
                lines.append(
                    f"    Revocation Reason: {reason.value} (0x{_REASON_CODES.get(reason, 0):x})"
                )
        lines.append(f"    This Update: {openssl_time(single.this_update_utc)}")
        if single.next_update_utc is not None:
            lines.append(f"    Next Update: {openssl_time(single.next_update_utc)}")
    extensions = list(response.extensions)
    if extensions:
        lines.append("    Response Extensions:")
        for extension in extensions:
            name = extension.oid._name
            lines.append(f"        {name}:{' critical' if extension.critical else ''}")
            value = getattr(extension.value, "nonce", None)
            if isinstance(value, bytes):
                lines += _hex_dump(value, "            ")
    lines += [
        "",
        f"    Signature Algorithm: {response.signature_algorithm_oid._name}",
        "    Signature Value:",
        *_hex_dump(response.signature, "        "),
    ]
    for certificate in response.certificates:
        lines += [
            "Certificate:",
            f"    Serial Number: {_serial_hex(certificate.serial_number)}",
            f"    Issuer: {openssl_name(certificate.issuer)}",
            f"    Subject: {openssl_name(certificate.subject)}",
            f"    Not Before: {openssl_time(certificate.not_valid_before_utc)}",
            f"    Not After : {openssl_time(certificate.not_valid_after_utc)}",
        ]
        try:
            eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            lines.append("    Extended Key Usage: " + ", ".join(u._name for u in eku))
        except x509.ExtensionNotFound:
            pass
    return "\n".join(lines) + "\n"


def format_staple(staple: VerifiedStaple) -> list[str]:
    """The facts an operator checks about a verified staple, one per line."""
    lines = [f"Cert Status: {staple.status.value}"]
    if staple.status is CertStatus.REVOKED:
        when = openssl_time(staple.revocation_time) if staple.revocation_time else "unknown"
        lines.append(f"Revocation Time: {when}")
        lines.append(f"Revocation Reason: {staple.revocation_reason or 'unspecified'}")
    lines += [
        f"This Update: {openssl_time(staple.this_update)}",
        f"Next Update: {openssl_time(staple.next_update)}",
        f"Served until: {openssl_time(staple.expire())} (nextUpdate - {WITHDRAWAL_MARGIN_S} s)",
        f"Signed by: {staple.responder}",
        f"Certificate ID key: {staple.cert_id.hex}",
    ]
    return lines


def format_failure(error: VerificationError) -> list[str]:
    """The specific reason a response was refused, and what to do about it."""
    return [
        f"Response verify FAILED: {error}",
        f"Reason: {error.reason.value}",
        f"Hint: {error.hint}",
    ]


# --- commands ---


def _print(out: TextIO, lines: Sequence[str]) -> None:
    out.write("".join(f"{line}\n" for line in lines))


def _cmd_fetch(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    source = load_certificate_input(args.cert, args.issuer)
    settings = FetchSettings(
        total_timeout=args.timeout, proxy=args.proxy, connect_retries=args.retries
    )
    outcome = asyncio.run(fetch_once(source, url=args.url, settings=settings))
    if outcome.update_line:
        _print(out, [outcome.update_line])
    if outcome.staple is None:
        if outcome.error is not None:
            _print(err, format_failure(outcome.error))
        elif not outcome.fetch.ok:
            _print(err, [f"Fetch FAILED: {outcome.fetch.detail}"])
        return EXIT_FAILED
    _print(out, format_staple(outcome.staple))
    if args.out is not None:
        try:
            write_sidecar_atomically(args.out, outcome.staple.der)
        except OSError as exc:
            raise InputError(
                InputProblem.OUTPUT_UNWRITABLE,
                args.out,
                f"cannot write '{args.out}': {exc.strerror or exc}",
                "choose a writable path",
            ) from exc
        _print(out, [f"Response written to {args.out} ({len(outcome.staple.der)} bytes)"])
    if outcome.staple.status is CertStatus.REVOKED:
        _print(err, [f"WARNING: {source.path} is REVOKED; replace the certificate"])
    return EXIT_OK


def _cmd_show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    der = _read_response(args.file)
    try:
        text = format_response_text(der)
    except ValueError as exc:
        raise InputError(
            InputProblem.RESPONSE_UNREADABLE,
            args.file,
            f"'{args.file}' is not a DER OCSP response ({_one_line(str(exc))})",
            "give the file `openssl ocsp -respout` or `staplegate ocsp fetch --out` wrote",
        ) from exc
    out.write(text)
    if args.cert is not None:
        source = load_certificate_input(args.cert, args.issuer)
        _print(out, ["", *_verdict(der, source)])
    return EXIT_OK


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _verdict(der: bytes, source: CertificateInput) -> list[str]:
    try:
        staple = verify_response(
            der, certificate=source.certificate, issuer=source.issuer, now=SystemClock().now()
        )
    except VerificationError as error:
        return format_failure(error)
    origin = f"Response verify OK for {source.path} (issuer: {source.issuer_origin})"
    return [origin, *format_staple(staple)]


def _cmd_verify(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    der = _read_response(args.file)
    source = load_certificate_input(args.cert, args.issuer)
    try:
        staple = verify_response(
            der, certificate=source.certificate, issuer=source.issuer, now=SystemClock().now()
        )
    except VerificationError as error:
        _print(err, [f"{args.file}: does not verify for {source.path}", *format_failure(error)])
        return EXIT_FAILED
    _print(
        out,
        [
            f"{args.file}: Response verify OK for {source.path} (issuer: {source.issuer_origin})",
            *format_staple(staple),
        ],
    )
    return EXIT_OK


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {text!r}")
    return value


def _proxy(text: str) -> str:
    try:
        FetchSettings(proxy=text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="staplegate ocsp",
        description="Fetch, show and verify OCSP responses with the daemon's own rules.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fetch = sub.add_parser(
        "fetch",
        help="fetch and verify one response (like openssl ocsp ... -respout)",
        description="Fetch one OCSP response for CERT as the updater would and verify it. "
        "Exit 0 only when it verifies.",
    )
    fetch.add_argument("cert", type=Path, metavar="CERT", help="PEM certificate or HAProxy bundle")
    fetch.add_argument(
        "--issuer", type=Path, metavar="FILE", help="issuer certificate (default: chain, .issuer)"
    )
    fetch.add_argument("--url", metavar="URL", help="responder URL (default: the AIA's OCSP URI)")
    fetch.add_argument(
        "--out", type=Path, metavar="FILE", help="write the DER response here if it verifies"
    )
    fetch.add_argument(
        "--timeout", type=_seconds, default=15.0, metavar="S", help="whole-fetch timeout (15)"
    )
    fetch.add_argument(
        "--retries",
        type=int,
        choices=range(11),
        default=3,
        metavar="N",
        help="extra connection attempts, 1 s apart (3, as HAProxy)",
    )
    fetch.add_argument(
        "--proxy", type=_proxy, metavar="HOST:PORT", help="HTTP proxy (ocsp-update.httpproxy)"
    )
    fetch.set_defaults(handler=_cmd_fetch)

    show = sub.add_parser(
        "show",
        help="print a response in human-readable form (like openssl ocsp -resp_text)",
        description="Print FILE.ocsp like `openssl ocsp -respin FILE -resp_text`; with --cert, "
        "also whether it verifies for that certificate.",
    )
    show.add_argument("file", type=Path, metavar="FILE.ocsp")
    show.add_argument("--cert", type=Path, metavar="CERT", help="also verify for this certificate")
    show.add_argument("--issuer", type=Path, metavar="FILE", help="issuer certificate")
    show.set_defaults(handler=_cmd_show)

    verify = sub.add_parser(
        "verify",
        help="exit 0 when a response verifies for a certificate, else say why and exit 1",
        description="Run every check a staple candidate must pass (signature, responder, "
        f"CertId, status, time window, {WITHDRAWAL_MARGIN_S} s rule) and name the first that "
        "fails.",
    )
    verify.add_argument("file", type=Path, metavar="FILE.ocsp")
    verify.add_argument("--cert", type=Path, required=True, metavar="CERT")
    verify.add_argument("--issuer", type=Path, metavar="FILE", help="issuer certificate")
    verify.set_defaults(handler=_cmd_verify)
    return parser


def main(argv: list[str], *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run `staplegate ocsp ARGV`; returns the exit status."""
    stdout = out or sys.stdout
    stderr = err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args, stdout, stderr)
    except InputError as error:
        stderr.write(f"staplegate ocsp {args.command}: {error}\n")
        return EXIT_INPUT
    return status
