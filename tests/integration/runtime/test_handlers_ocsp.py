"""OCSP commands through a real Unix socket: exact answers, verified pushes, waited updates."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from staplegate.clock import SystemClock
from staplegate.config.model import StatsLevel
from staplegate.fetch.client import FetchSettings
from staplegate.ocsp.certid import CertId
from staplegate.ocsp.schedule import UpdateSettings
from staplegate.runtime.grammar import parse_words
from staplegate.runtime.handlers import RuntimeHandlers
from staplegate.testpki.pytest_plugin import Pki
from staplegate.updater.service import OcspUpdater
from tests.ocsp_der import with_md5_cert_id

from .runtime_harness import WAIT, Lab, ask, lab

pytestmark = pytest.mark.openssl

T = TypeVar("T")


def run(pki: Pki, tmp_path: Path, body: Callable[[Lab], Coroutine[Any, Any, T]]) -> T:
    async def main() -> T:
        async with lab(pki, tmp_path) as env:
            return await body(env)

    return asyncio.run(main())


def respond(
    env: Lab,
    short: str,
    *,
    this_update: dt.datetime,
    next_update: dt.datetime,
    key: ec.EllipticCurvePrivateKey | None = None,
    responder: x509.Certificate | None = None,
) -> bytes:
    """A response for `short` signed by the test CA's delegated signer (or `key`)."""
    issued = env.issued[short]
    signer = env.pki.signer
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=issued.certificate,
            issuer=issued.issuer,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=this_update,
            next_update=next_update,
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, responder or signer.certificate)
        .certificates([responder or signer.certificate])
    )
    response = builder.sign(key or signer.private_key, hashes.SHA256())
    return response.public_bytes(serialization.Encoding.DER)


def rogue_signer() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Rogue OCSP Responder")])
    now = SystemClock().now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, cert


def test_show_ssl_ocsp_response_lists_every_entry_in_certid_order(pki: Pki, tmp_path: Path) -> None:
    async def body(env: Lab) -> tuple[str, str]:
        return await ask(env.sockets[StatsLevel.USER], "show ssl ocsp-response\n"), ""

    answer, _ = run(pki, tmp_path, body)
    ids = sorted(
        (
            (CertId.for_certificate(i.certificate, i.issuer), str(i.bundle_path))
            for i in pki.issued.values()
        ),
        key=lambda item: item[0].der.ljust(128, b"\0"),
    )
    expected = "# Certificate IDs\n"
    for cert_id, path in ids:
        serial = cert_id.serial_number
        content = serial.to_bytes(serial.bit_length() // 8 + 1, "big")  # DER INTEGER bytes
        expected += (
            f"Certificate ID key : {cert_id.hex}\n"
            f"Certificate path : {path}\n"
            " Certificate ID:\n"
            f"   Issuer Name Hash: {cert_id.issuer_name_hash.hex().upper()}\n"
            f"   Issuer Key Hash: {cert_id.issuer_key_hash.hex().upper()}\n"
            f"   Serial Number: {content.hex().upper()}\n"
        )
    assert answer == expected + "\n"


def test_base64_answer_is_the_served_der_and_openssl_parses_it(pki: Pki, tmp_path: Path) -> None:
    """The seed page's "save the OCSP response" step, through socat and base64 -d."""

    async def body(env: Lab) -> tuple[str, bytes, str, bytes]:
        cert_id = env.cert_id("www")
        answer = await ask(
            env.sockets[StatsLevel.USER], f"show ssl ocsp-response base64 {cert_id.hex}\n"
        )
        der_file = env.directory / "resp.der"
        shell = (
            f"echo 'show ssl ocsp-response base64 {env.name('www')}' "
            f"| socat stdio unix:{env.sockets[StatsLevel.USER]} | base64 -d > {der_file} "
            f"&& openssl ocsp -respin {der_file} -resp_text -noverify"
        )
        process = await asyncio.create_subprocess_shell(
            shell, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await process.communicate()
        assert process.returncode == 0, err.decode()
        return answer, env.updater.table[cert_id], out.decode(), der_file.read_bytes()

    answer, served, openssl_text, saved = run(pki, tmp_path, body)
    assert answer.endswith("\n")
    assert not answer.endswith("\n\n")
    assert base64.b64decode(answer) == served
    assert saved == served
    assert "Cert Status: good" in openssl_text
    assert "OCSP Response Status: successful (0x0)" in openssl_text


def test_text_answer_is_openssls_dump_without_empty_lines(pki: Pki, tmp_path: Path) -> None:
    async def body(env: Lab) -> tuple[str, str]:
        text = await ask(
            env.sockets[StatsLevel.USER], f"show ssl ocsp-response {env.name('www')}\n"
        )
        via_cert = await ask(
            env.sockets[StatsLevel.USER], f"show ssl cert {env.name('www')}.ocsp\n"
        )
        return text, via_cert

    text, via_cert = run(pki, tmp_path, body)
    assert text.startswith("OCSP Response Data:\n    OCSP Response Status: successful (0x0)\n")
    assert "    Cert Status: good\n" in text
    assert text.endswith("-----END CERTIFICATE-----\n\n")
    assert "\n\n" not in text[:-1]  # HAProxy turns empty lines into " "
    assert "\n \n" in text
    assert via_cert == text


def test_show_ssl_ocsp_response_errors(pki: Pki, tmp_path: Path) -> None:
    async def body(env: Lab) -> list[str]:
        path = env.sockets[StatsLevel.USER]
        return [
            await ask(path, "show ssl ocsp-response base64\n"),
            await ask(path, "show ssl ocsp-response 303b300906052b0e03021a0500\n"),
            await ask(path, "show ssl ocsp-response /no/such.pem\n"),
        ]

    assert run(pki, tmp_path, body) == [
        "'show ssl ocsp-response [text|base64]' expects a valid certid.\n\n",
        "Certificate ID or path does not match any certificate.\n\n",
        "'show ssl ocsp-response' expects a valid certid or certificate path.\n\n",
    ]


def test_show_ssl_ocsp_updates_lists_queued_entries(pki: Pki, tmp_path: Path) -> None:
    async def body(env: Lab) -> str:
        return await ask(env.sockets[StatsLevel.USER], "show ssl ocsp-updates\n")

    answer = run(pki, tmp_path, body)
    lines = answer.split("\n")
    assert lines[0] == (
        "OCSP Certid | Path | Next Update | Last Update | Successes | Failures | "
        "Last Update Status | Last Update Status (str)"
    )
    rows = [line.split(" | ") for line in lines[1:] if line]
    assert {row[1] for row in rows} == {str(i.bundle_path) for i in pki.issued.values()}
    for row in rows:
        assert len(row) == 8
        assert row[4:] == ["1", "0", "1", "Update successful"]
        assert row[3] != "-"
        dt.datetime.strptime(row[2], "%d/%b/%Y:%H:%M:%S %z")  # HAProxy's date layout
    assert answer.endswith("\n\n")


def test_update_ssl_ocsp_response_waits_and_reports(pki: Pki, tmp_path: Path) -> None:
    async def body(env: Lab) -> list[str]:
        name = env.name("www")
        answers = [
            await ask(env.sockets[StatsLevel.USER], f"update ssl ocsp-response {name}\n"),
            await ask(env.sockets[StatsLevel.OPERATOR], f"update ssl ocsp-response {name}\n"),
        ]
        env.pki.responder.set_fault("http-500")
        answers.append(
            await ask(env.sockets[StatsLevel.OPERATOR], f"update ssl ocsp-response {name}\n")
        )
        answers.append(
            await ask(env.sockets[StatsLevel.ADMIN], "update ssl ocsp-response /nope.pem\n")
        )
        answers.append(await ask(env.sockets[StatsLevel.ADMIN], "update ssl ocsp-response\n"))
        return [name, *answers]

    name, user, ok, failed, unknown, missing = run(pki, tmp_path, body)
    assert user == "Permission denied\n\n"
    assert ok == f'<OCSP-UPDATE> {name} 1 "Update successful" 0 2\n\n'
    assert failed.startswith(f'<OCSP-UPDATE> {name} 2 "HTTP error (')
    assert failed.endswith('" 1 2\n\n')
    assert unknown == (
        "Unknown certificate! 'update ssl ocsp-response' expects an already known certificate "
        "file name.\nCan't send ocsp request for /nope.pem!\n\n"
    )
    assert missing == "'update ssl ocsp-response' expects a filename\n\n"


def test_set_ssl_ocsp_response_verifies_and_keeps_the_staple_on_refusal(
    pki: Pki, pki_factory: Callable[..., Pki], tmp_path: Path
) -> None:
    other = pki_factory(name="other")
    foreign_leaf = other.issue("foreign.example.test")

    async def body(env: Lab) -> tuple[list[str], list[bool], bytes, bytes]:
        cert_id = env.cert_id("www")
        before = env.updater.table[cert_id]
        now = SystemClock().now()
        good = respond(
            env,
            "www",
            this_update=now - dt.timedelta(minutes=1),
            next_update=now + dt.timedelta(days=2),
        )
        expired = respond(
            env,
            "www",
            this_update=now - dt.timedelta(days=3),
            next_update=now - dt.timedelta(days=1),
        )
        rogue_key, rogue_cert = rogue_signer()
        forged = respond(
            env,
            "www",
            this_update=now - dt.timedelta(minutes=1),
            next_update=now + dt.timedelta(days=2),
            key=rogue_key,
            responder=rogue_cert,
        )
        foreign = (
            ocsp.OCSPResponseBuilder()
            .add_response(
                cert=foreign_leaf.certificate,
                issuer=foreign_leaf.issuer,
                algorithm=hashes.SHA1(),
                cert_status=ocsp.OCSPCertStatus.GOOD,
                this_update=now,
                next_update=now + dt.timedelta(days=1),
                revocation_time=None,
                revocation_reason=None,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, other.signer.certificate)
            .sign(other.signer.private_key, hashes.SHA256())
            .public_bytes(serialization.Encoding.DER)
        )
        admin = env.sockets[StatsLevel.ADMIN]
        answers, kept = [], []
        for der in (foreign, forged, expired, b"\x30\x03abc"):
            b64 = base64.b64encode(der).decode()
            answers.append(await ask(admin, f"set ssl ocsp-response {b64}\n"))
            kept.append(env.updater.table[cert_id] == before)
        answers.append(await ask(admin, "set ssl ocsp-response !!notbase64\n"))
        answers.append(await ask(admin, "set ssl ocsp-response\n"))
        answers.append(
            await ask(
                env.sockets[StatsLevel.OPERATOR],
                f"set ssl ocsp-response {base64.b64encode(good).decode()}\n",
            )
        )
        kept.append(env.updater.table[cert_id] == before)
        wrapped = base64.encodebytes(good).decode()  # 76-column lines: the payload form
        answers.append(await ask(admin, f"set ssl ocsp-response <<\n{wrapped}\n"))
        return answers, kept, env.updater.table[cert_id], good

    answers, kept, served, good = run(pki, tmp_path, body)
    foreign, forged, expired, garbage, bad_b64, empty, operator, accepted = answers
    assert foreign.startswith(
        "OCSP single response: Certificate ID does not match any certificate or issuer.\n"
    )
    assert forged.startswith("OCSP response signer not authorized")
    assert expired.startswith("OCSP single response: no longer valid.")
    assert garbage.startswith("Unable to parse OCSP response")
    for refusal in (foreign, forged, expired, garbage):
        assert "The current response is kept: " in refusal
        assert refusal.endswith("\n\n")
    assert bad_b64 == "'set ssl ocsp-response' received invalid base64 encoded response.\n\n"
    assert empty == "'set ssl ocsp-response' expects response in base64 encoding.\n\n"
    assert operator == "Permission denied\n\n"
    assert kept == [True] * 5
    assert accepted == "OCSP Response updated!\n\n"
    assert served == good


def test_show_commands_answer_quickly_while_an_update_waits(pki: Pki, tmp_path: Path) -> None:
    """A hung responder delays only the `update` caller, not other clients."""

    async def body(env: Lab) -> tuple[str, str]:
        env.pki.responder.set_fault("hang")
        update = asyncio.create_task(
            ask(env.sockets[StatsLevel.OPERATOR], f"update ssl ocsp-response {env.name('www')}\n")
        )
        await asyncio.to_thread(env.pki.responder.wait_for_requests, 3, WAIT)
        async with asyncio.timeout(2.0):
            info = await ask(env.sockets[StatsLevel.USER], "show ssl ocsp-updates\n")
        env.pki.responder.clear_faults()
        update.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await update
        return info, env.cert_id("www").hex

    info, hex_id = run(pki, tmp_path, body)
    first = info.split("\n")[1]
    assert first.startswith(hex_id + " | ")  # the entry being fetched is listed first


def test_update_ssl_ocsp_response_waits_out_the_fetch_timeout_and_reports_it(
    pki: Pki, tmp_path: Path
) -> None:
    """Issue 14, defect 10: the command waited 15 s for a fetch allowed 15 s, so a fetch that
    timed out was reported as "still running". Even asked to wait less than the fetch may
    take (1 s against the lab's 5 s), it now waits for the fetch's own verdict."""

    async def body(env: Lab) -> tuple[str, str]:
        handlers = RuntimeHandlers(env.backend, update_timeout=1.0)
        env.pki.responder.set_fault("hang")
        command = parse_words(["update", "ssl", "ocsp-response", env.name("www")])
        answer = await handlers.execute(command, StatsLevel.OPERATOR)
        env.pki.responder.clear_faults()
        return env.name("www"), answer

    name, answer = run(pki, tmp_path, body)
    assert answer.startswith(f'<OCSP-UPDATE> {name} 2 "HTTP error ('), answer
    assert "timeout" in answer
    assert answer.endswith('" 1 1\n')  # the lab fetched once at start-up


def test_update_wait_is_longer_than_the_fetch_timeout() -> None:
    for total in (1.0, 5.0, 15.0):
        updater = OcspUpdater(
            [],
            update_settings=UpdateSettings(),
            fetch_settings=FetchSettings(total_timeout=total),
            on_staples=lambda table: None,
        )
        assert updater.update_wait > total


def test_set_ssl_ocsp_response_with_an_md5_certid_gets_a_specific_refusal(
    pki: Pki, tmp_path: Path
) -> None:
    """Issue 14, defect 10: UnsupportedAlgorithm escaped and the answer was "Internal error"."""

    async def body(env: Lab) -> tuple[str, bool]:
        cert_id = env.cert_id("www")
        before = env.updater.table[cert_id]
        now = SystemClock().now()
        good = respond(
            env,
            "www",
            this_update=now - dt.timedelta(minutes=1),
            next_update=now + dt.timedelta(days=2),
        )
        md5 = base64.b64encode(with_md5_cert_id(good)).decode()
        answer = await ask(env.sockets[StatsLevel.ADMIN], f"set ssl ocsp-response {md5}\n")
        return answer, env.updater.table[cert_id] == before

    answer, kept = run(pki, tmp_path, body)
    assert answer.startswith(
        "OCSP single response: Certificate ID uses an unsupported hash algorithm "
        "(1.2.840.113549.2.5).\n"
    ), answer
    assert "The current response is kept: " in answer
    assert "SHA-1" in answer
    assert kept
