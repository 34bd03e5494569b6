"""CertificateError: HAProxy's message, the file at fault, and the hint in its text."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from staplegate.certs import load_certificate
from staplegate.certs.errors import CertificateError, CertificateErrorReason
from staplegate.certs.source import CertificateSource, ExtraFiles

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_the_hint_follows_the_message_in_parentheses() -> None:
    error = CertificateError(
        CertificateErrorReason.ENCRYPTED_KEY,
        Path("/etc/ssl/site.pem"),
        "unable to load the private key",
        hint="remove the passphrase with `openssl pkey`",
    )
    assert error.reason is CertificateErrorReason.ENCRYPTED_KEY
    assert error.path == Path("/etc/ssl/site.pem")
    assert error.message == "unable to load the private key"
    assert (
        str(error) == "unable to load the private key (remove the passphrase with `openssl pkey`)"
    )
    bare = CertificateError(CertificateErrorReason.NOT_PEM, Path("x.pem"), "not a PEM file")
    assert bare.hint is None
    assert str(bare) == "not a PEM file"


def test_the_loader_raises_it_with_the_reason_and_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "gone.pem"
    source = CertificateSource(name=str(missing), crt_path=missing)
    with pytest.raises(CertificateError) as caught:
        load_certificate(source, extra=ExtraFiles.parse(["none"], del_ext=False), now=NOW)
    assert caught.value.reason is CertificateErrorReason.MISSING_FILE
    assert caught.value.path == missing
