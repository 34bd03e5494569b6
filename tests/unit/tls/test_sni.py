"""The SNI index (pure): exact, wildcard, `!` exclusions, default, strict-sni, key types."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from staplegate.certs.model import KeyAlgorithm
from staplegate.tls.clienthello import ClientHello
from staplegate.tls.sni import SniEntry, SniIndex, SniMatch

ECDSA_AND_RSA = (0x0403, 0x0804)


def hello(name: str | None, sigalgs: tuple[int, ...] | None = ECDSA_AND_RSA) -> ClientHello:
    return ClientHello(
        legacy_version=0x0303,
        server_name=name,
        alpn_protocols=(),
        status_request=True,
        supported_versions=(0x0304, 0x0303),
        signature_algorithms=sigalgs,
        cipher_suites=(0x1301,),
    )


def entry(
    value: str,
    *names: str,
    key: KeyAlgorithm = KeyAlgorithm.ECDSA,
    filters: tuple[str, ...] = (),
) -> SniEntry[str]:
    return SniEntry(value=value, names=names, key_algorithm=key, sni_filters=filters)


INDEX = SniIndex(
    [
        entry("default", "default.test"),
        entry("exact", "exact.test", "Mixed.Case.test"),
        entry("wild", "*.wild.test", filters=("*.wild.test", "!secret.wild.test", "!*.x")),
        entry("exact-over-wild", "www.wild.test"),
        entry("dual-rsa", "dual.test", key=KeyAlgorithm.RSA),
        entry("dual-ec", "dual.test"),
        entry("filtered", "ignored-cn.test", filters=("alias.test",)),
    ]
)


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("exact.test", "exact", SniMatch.EXACT),
        ("EXACT.TEST.", "exact", SniMatch.EXACT),
        ("mixed.case.test", "exact", SniMatch.EXACT),
        ("a.wild.test", "wild", SniMatch.WILDCARD),
        ("www.wild.test", "exact-over-wild", SniMatch.EXACT),
        ("secret.wild.test", "default", SniMatch.DEFAULT),
        ("wild.test", "default", SniMatch.DEFAULT),
        ("a.b.wild.test", "default", SniMatch.DEFAULT),
        ("alias.test", "filtered", SniMatch.EXACT),
        ("ignored-cn.test", "default", SniMatch.DEFAULT),  # filters replace the names
        (None, "default", SniMatch.DEFAULT),
    ],
)
def test_lookup(name: str | None, value: str, match: SniMatch) -> None:
    choice = INDEX.choose(hello(name))
    assert choice is not None
    assert (choice.value, choice.match) == (value, match)


@pytest.mark.parametrize(
    ("sigalgs", "value"),
    [
        (ECDSA_AND_RSA, "dual-ec"),
        ((0x0804, 0x0401), "dual-rsa"),
        (None, "dual-rsa"),  # TLS 1.2 without signature_algorithms: rsa/sha1 assumed
        ((0x0807,), "dual-rsa"),  # neither: the first in configuration order
    ],
)
def test_key_type_by_signature_algorithms(sigalgs: tuple[int, ...] | None, value: str) -> None:
    choice = INDEX.choose(hello("dual.test", sigalgs))
    assert choice is not None
    assert choice.value == value


def test_strict_sni_refuses_instead_of_default() -> None:
    strict = SniIndex([entry("a", "a.test"), entry("b", "b.test")], strict_sni=True)
    assert strict.choose(hello("unknown.test")) is None
    assert strict.choose(hello(None)) is None
    choice = strict.choose(hello("b.test"))
    assert choice is not None
    assert choice.value == "b"
    assert strict.default == "a"


def test_an_empty_bind_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one certificate"):
        SniIndex([])


# --- must-staple certificates without a staple (issue 19 item 3) ---

STRICT = SniIndex(
    [
        entry("default", "default.test"),
        SniEntry("strict-ec", ("both.test",), KeyAlgorithm.ECDSA, must_staple_key=b"ec-key"),
        entry("plain-rsa", "both.test", key=KeyAlgorithm.RSA),
        SniEntry("lonely", ("lonely.test",), KeyAlgorithm.ECDSA, must_staple_key=b"lonely"),
        entry("lonely-filler", "other.test"),
    ]
)


def staples(*keys: bytes) -> Callable[[bytes], bytes]:
    held = set(keys)
    return lambda key: b"staple" if key in held else b""


def test_an_unstapled_must_staple_certificate_gives_way_to_one_the_client_accepts() -> None:
    choice = STRICT.choose(hello("both.test"), staples())
    assert choice is not None
    assert choice.value == "plain-rsa"


def test_a_stapled_must_staple_certificate_keeps_its_place() -> None:
    choice = STRICT.choose(hello("both.test"), staples(b"ec-key"))
    assert choice is not None
    assert choice.value == "strict-ec"


def test_without_another_certificate_for_the_name_it_is_served_anyway() -> None:
    choice = STRICT.choose(hello("lonely.test"), staples())
    assert choice is not None
    assert choice.value == "lonely"


def test_no_other_certificate_the_client_can_use_means_no_change() -> None:
    ecdsa_only = hello("both.test", sigalgs=(0x0403,))
    choice = STRICT.choose(ecdsa_only, staples())
    assert choice is not None
    assert choice.value == "strict-ec"


def test_without_a_staple_lookup_the_choice_is_haproxys() -> None:
    choice = STRICT.choose(hello("both.test"))
    assert choice is not None
    assert choice.value == "strict-ec"
