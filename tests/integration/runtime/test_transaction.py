"""Certificate commands: `show ssl cert`, crt-lists, and hot replacement carrying OCSP right."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from staplegate.config.model import StatsLevel
from staplegate.ocsp.certid import CertId
from staplegate.testpki.pytest_plugin import Pki

from .runtime_harness import Lab, ask, lab

pytestmark = pytest.mark.openssl

T = TypeVar("T")


def run(pki: Pki, tmp_path: Path, body: Callable[[Lab], Coroutine[Any, Any, T]]) -> T:
    async def main() -> T:
        async with lab(pki, tmp_path) as env:
            return await body(env)

    return asyncio.run(main())


def test_show_ssl_cert_list_and_details(pki: Pki, tmp_path: Path) -> None:
    async def body(env: Lab) -> tuple[str, str, str]:
        user = env.sockets[StatsLevel.USER]
        listing = await ask(user, "show ssl cert\n")
        details = await ask(user, f"show ssl cert {env.name('www')}\n")
        missing = await ask(user, "show ssl cert /nope.pem\n")
        return listing, details, missing

    listing, details, missing = run(pki, tmp_path, body)
    www, shop = pki.issued["www.example.test"], pki.issued["shop.example.test"]
    assert (
        listing
        == "# filename\n"
        + "".join(f"{p}\n" for p in sorted([str(www.bundle_path), str(shop.bundle_path)]))
        + "\n"
    )
    leaf = www.certificate
    serial = f"{leaf.serial_number:X}"
    serial = "0" + serial if len(serial) % 2 else serial
    cert_id = CertId.for_certificate(leaf, www.issuer)
    lines = details.split("\n")
    assert lines[0] == f"Filename: {www.bundle_path}"
    assert f"Crt filename: {www.bundle_path}" in lines
    assert f"OCSP filename: {www.bundle_path}.ocsp" in lines
    assert f"OCSP Issuer filename: {www.bundle_path}.issuer" in lines
    assert "Status: Used" in lines
    assert f"Serial: {serial}" in lines
    not_after = leaf.not_valid_after_utc
    assert f"notAfter: {not_after:%b} {not_after.day:2d} {not_after:%H:%M:%S %Y} GMT" in lines
    assert "Subject Alternative Name: DNS:www.example.test" in lines
    assert "Algorithm: EC256" in lines
    assert f"SHA1 FingerPrint: {leaf.fingerprint(hashes.SHA1()).hex().upper()}" in lines
    assert "Subject: /CN=www.example.test" in lines
    assert f"Issuer: /CN={www.issuer.subject.rfc4514_string()[3:]}" in lines
    assert lines[-3] == f"OCSP Response Key: {cert_id.hex}"
    assert details.endswith("\n\n")
    assert "PRIVATE KEY" not in details
    assert missing == (
        "Can't display the certificate: Not found or the certificate is a bundle!\n\n"
    )


def test_show_ssl_crt_list(pki: Pki, tmp_path: Path) -> None:
    async def body(env: Lab) -> list[str]:
        user = env.sockets[StatsLevel.USER]
        name = str(env.directory / "certs.lst")
        return [
            name,
            await ask(user, "show ssl crt-list\n"),
            await ask(user, f"show ssl crt-list {name}\n"),
            await ask(user, f"show ssl crt-list -n {name}\n"),
            await ask(user, "show ssl crt-list -n\n"),
            await ask(user, "show ssl crt-list /other.lst\n"),
        ]

    name, names, plain, numbered, no_file, unknown = run(pki, tmp_path, body)
    www = pki.issued["www.example.test"].bundle_path
    shop = pki.issued["shop.example.test"].bundle_path
    assert names == f"{name}\n\n"
    assert plain == (
        f"# {name}\n{www} [alpn h2,http/1.1 ocsp-update on] www.example.test\n{shop}\n\n"
    )
    assert numbered == (
        f"# {name}\n{www}:1 [alpn h2,http/1.1 ocsp-update on] www.example.test\n{shop}:2\n\n"
    )
    assert no_file == "'show ssl crt-list -n' expects a filename or a directory\n\n"
    assert unknown == "didn't find the specified filename\n\n"


def test_renewed_certificate_gets_its_own_certid_and_never_the_old_staple(
    pki: Pki, tmp_path: Path
) -> None:
    """HAProxy issue #2319: set/commit ssl cert must re-key OCSP."""
    renewals = []

    async def body(env: Lab) -> dict[str, Any]:
        # the CA keeps one valid certificate per subject: the renewal gets its own CN
        renewed = pki.issue(
            "www-renewed.example.test", sans=["www.example.test"], out_dir=tmp_path / "renewed"
        )
        renewals.append(renewed)
        admin = env.sockets[StatsLevel.ADMIN]
        name = env.name("www")
        old_id = env.cert_id("www")
        old_der = env.updater.table[old_id]
        new_id = CertId.for_certificate(renewed.certificate, renewed.issuer)
        pem = renewed.bundle_path.read_text()
        old_b64 = base64.b64encode(old_der).decode()
        out: dict[str, Any] = {"name": name, "old_id": old_id, "new_id": new_id}
        out["set"] = await ask(admin, f"set ssl cert {name} <<\n{pem}\n")
        # the old certificate's response, pushed into the transaction: must not be stapled
        out["set_ocsp"] = await ask(admin, f"set ssl cert {name}.ocsp <<\n{old_b64}\n\n")
        out["listing"] = await ask(admin, "show ssl cert\n")
        out["pending"] = await ask(admin, f"show ssl cert *{name}\n")
        out["served_before"] = await ask(admin, f"show ssl ocsp-response base64 {name}\n")
        out["commit"] = await ask(admin, f"commit ssl cert {name}\n")
        out["old_gone"] = old_id not in env.updater.table
        await env.tables.wait_for(lambda table: new_id in table)
        out["new_der"] = env.updater.table[new_id]
        out["served_after"] = await ask(admin, f"show ssl ocsp-response base64 {name}\n")
        out["details"] = await ask(admin, f"show ssl cert {name}\n")
        out["commits"] = list(env.backend.commits)
        out["old_der"] = old_der
        return out

    out = run(pki, tmp_path, body)
    renewed = renewals[0]
    name = out["name"]
    assert out["set"] == f"Transaction created for certificate {name}!\n\n"
    assert out["set_ocsp"] == f"Transaction updated for certificate {name}!\n\n"
    assert out["listing"].startswith(f"# transaction\n*{name}\n# filename\n")
    assert "Status: Uncommitted" in out["pending"]
    assert f"OCSP Response Key: {out['new_id'].hex}" in out["pending"]
    assert base64.b64decode(out["served_before"]) == out["old_der"]
    commit = out["commit"]
    assert commit.startswith(f"Committing {name}..\n")
    assert "Certificate ID does not match certificate and issuer" in commit
    assert commit.endswith("Success!\n\n")
    assert out["commits"] == [(name, out["new_id"])]
    assert out["old_gone"]
    served = base64.b64decode(out["served_after"])
    assert served == out["new_der"] != out["old_der"]
    single = ocsp.load_der_ocsp_response(served)
    assert single.serial_number == renewed.certificate.serial_number
    assert f"Serial: {renewed.certificate.serial_number:X}".upper()[8:] in out["details"].upper()
    assert "Status: Used" in out["details"]


def test_transaction_errors_abort_new_and_del(pki: Pki, tmp_path: Path) -> None:
    async def body(env: Lab) -> list[str]:
        admin = env.sockets[StatsLevel.ADMIN]
        www, shop = env.name("www"), env.name("shop")
        pem = Path(www).read_text()
        key_free = "".join(block for block in pem.split("-----END") if "PRIVATE" not in block)
        return [
            await ask(env.sockets[StatsLevel.OPERATOR], f"set ssl cert {www} <<\n{pem}\n"),
            await ask(admin, f"set ssl cert /not/configured.pem <<\n{pem}\n"),
            await ask(admin, f"set ssl cert {www} <<\n{pem}\n"),
            await ask(admin, f"set ssl cert {shop} <<\n{pem}\n"),
            await ask(admin, f"set ssl cert {www}.ocsp <<\n***\n\n"),
            await ask(admin, f"commit ssl cert {shop}\n"),
            await ask(admin, f"abort ssl cert {www}\n"),
            await ask(admin, f"abort ssl cert {www}\n"),
            await ask(admin, f"commit ssl cert {www}\n"),
            await ask(admin, "new ssl cert /run/new.pem\n"),
            await ask(admin, "new ssl cert /run/new.pem\n"),
            await ask(admin, "show ssl cert /run/new.pem\n"),
            await ask(admin, f"del ssl cert {www}\n"),
            await ask(admin, "del ssl cert /run/new.pem\n"),
            await ask(admin, "del ssl cert /run/new.pem\n"),
            key_free,
        ]

    answers = run(pki, tmp_path, body)
    www = str(pki.issued["www.example.test"].bundle_path)
    shop = str(pki.issued["shop.example.test"].bundle_path)
    assert answers[:15] == [
        "Permission denied\n\n",
        "Can't replace a certificate which is not referenced by the configuration!\n"
        "Can't update /not/configured.pem!\n\n",
        f"Transaction created for certificate {www}!\n\n",
        f"The ongoing transaction is about '{www}' but you are trying to set '{shop}'\n"
        f"Can't update {shop}!\n\n",
        "Error reading OCSP response in base64 formatCan't load the payload\n"
        f"Can't update {www}.ocsp!\n\n",
        f"The ongoing transaction is about '{www}' but you are trying to set '{shop}'\n\n",
        f"Transaction aborted for certificate '{www}'!\n\n",
        "No ongoing transaction!\n\n",
        "No ongoing transaction!\n\n",
        "New empty certificate store '/run/new.pem'!\n\n",
        "Certificate '/run/new.pem' already exists!\n\n",
        "Filename: /run/new.pem\nStatus: Empty\n\n",
        f"Can't remove the certificate: certificate '{www}' in use, can't remove!\n\n",
        "Certificate '/run/new.pem' deleted!\n\n",
        "Can't remove the certificate: certificate '/run/new.pem' doesn't exist!\n\n",
    ]


def test_certificate_without_key_match_is_refused_at_commit(
    pki: Pki, pki_factory: Callable[..., Pki], tmp_path: Path
) -> None:
    stranger = pki_factory(name="stranger").issue("www.example.test")

    async def body(env: Lab) -> tuple[str, str, list[Any]]:
        admin = env.sockets[StatsLevel.ADMIN]
        www = env.name("www")
        cert_only = stranger.certificate.public_bytes(serialization.Encoding.PEM).decode()
        created = await ask(admin, f"set ssl cert {www} <<\n{cert_only}\n")
        commit = await ask(admin, f"commit ssl cert {www}\n")
        return created, commit, list(env.backend.commits)

    created, commit, commits = run(pki, tmp_path, body)
    www = pki.issued["www.example.test"].bundle_path
    assert created == f"Transaction created for certificate {www}!\n\n"
    assert commit == (
        f"Committing {www}\ninconsistencies between private key and certificate loaded "
        f"'{www}'.\nFailed!\n\n"
    )
    assert commits == []  # the workers were never told
