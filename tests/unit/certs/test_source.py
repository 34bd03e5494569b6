"""ssl-load-extra-files parsing and sidecar naming (spec §3.1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from staplegate.certs import CertificateSource, ExtraFiles
from staplegate.certs.source import Sidecar, sidecar_base, sidecar_path


def test_default_reads_everything() -> None:
    extra = ExtraFiles()
    assert (extra.key, extra.issuer, extra.ocsp, extra.sctl, extra.bundle) == (True,) * 5
    assert extra.del_ext is False


def test_parse_all_and_none() -> None:
    assert ExtraFiles.parse(["all"], del_ext=True) == ExtraFiles(del_ext=True)
    assert ExtraFiles.parse(["none"], del_ext=False) == ExtraFiles(
        key=False, issuer=False, ocsp=False, sctl=False, bundle=False
    )


def test_parse_combination() -> None:
    extra = ExtraFiles.parse(["key", "ocsp", "issuer"], del_ext=False)
    assert extra == ExtraFiles(key=True, issuer=True, ocsp=True, sctl=False, bundle=False)
    assert extra.reads(Sidecar.OCSP)
    assert not extra.reads(Sidecar.SCTL)


@pytest.mark.parametrize("words", [["none", "key"], ["key", "all"], ["all", "none"]])
def test_none_and_all_stand_alone(words: list[str]) -> None:
    with pytest.raises(ValueError, match="'none' and 'all' can be only used alone"):
        ExtraFiles.parse(words, del_ext=False)


@pytest.mark.parametrize("words", [[], ["crt"], ["key", "ocps"]])
def test_unknown_or_missing_words(words: list[str]) -> None:
    with pytest.raises(ValueError, match="expects one or multiple arguments"):
        ExtraFiles.parse(words, del_ext=False)


def test_sidecar_names() -> None:
    plain, del_ext = ExtraFiles(), ExtraFiles(del_ext=True)
    assert sidecar_path(Path("/c/site.pem"), Sidecar.OCSP, plain) == Path("/c/site.pem.ocsp")
    assert sidecar_path(Path("/c/site.crt"), Sidecar.KEY, plain) == Path("/c/site.crt.key")
    assert sidecar_path(Path("/c/site.crt"), Sidecar.KEY, del_ext) == Path("/c/site.key")
    # only a trailing .crt is stripped; bundle suffixes never are
    assert sidecar_base(Path("/c/site.pem"), del_ext) == "/c/site.pem"
    assert sidecar_base(Path("/c/site.crt.rsa"), del_ext) == "/c/site.crt.rsa"


def test_source_from_path_is_named_by_its_path() -> None:
    source = CertificateSource.from_path("/etc/haproxy/site.pem")
    assert source == CertificateSource(
        name="/etc/haproxy/site.pem", crt_path=Path("/etc/haproxy/site.pem")
    )
    assert source.discover_sidecars is True
