"""The CRL verifier on mutated real CRLs (tests/fuzz_targets/crl_verify.py), bounded.

Only CrlError may escape `check_certificate`, and an altered signed part is never accepted.
Hypothesis mutates the target's seeds (derandomized, no database); `bench/fuzz.py` runs the
same target for a million inputs.
"""

from __future__ import annotations

import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from staplegate.crl.verify import CrlError, check_certificate
from tests.fuzz_targets import crl_verify

SEEDS = crl_verify.seeds()
DER_SEEDS = [seed for seed in SEEDS if not seed.startswith(b"-----")]
FUZZ = settings(
    max_examples=600,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed with 1-4 byte-level edits: flips, overwrites, inserts, deletes, cuts."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        edit = draw(st.sampled_from(["flip", "set", "insert", "delete", "cut"]))
        if edit == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "set":
            data[at] = draw(st.sampled_from([0x00, 0x01, 0x02, 0x05, 0x30, 0x7F, 0x80, 0xFF]))
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif edit == "delete":
            del data[at : at + draw(st.integers(1, 4))]
        else:
            del data[at:]
    return bytes(data)


@st.composite
def signed_part_altered(draw: st.DrawFn) -> bytes:
    """An accepted seed (not listing / listing the leaf) with one tbsCertList byte changed."""
    seed = draw(st.sampled_from(DER_SEEDS[:3]))
    tbs = x509.load_der_x509_crl(seed).tbs_certlist_bytes
    start = seed.index(tbs)
    at = start + draw(st.integers(0, len(tbs) - 1))
    value = draw(st.integers(0, 255).filter(lambda b: b != seed[at]))
    return seed[:at] + bytes([value]) + seed[at + 1 :]


def test_the_seeds_pass_the_target() -> None:
    for seed in SEEDS:
        crl_verify.run_one(seed)


@FUZZ
@given(mutated())
def test_mutated_crls_raise_only_crl_error(data: bytes) -> None:
    crl_verify.run_one(data)


@FUZZ
@given(signed_part_altered())
def test_an_altered_signed_part_is_never_accepted(data: bytes) -> None:
    world = crl_verify.pki()
    with pytest.raises(CrlError):
        check_certificate(data, world.leaf, world.ca, now=crl_verify.NOW)


@FUZZ
@given(st.binary(max_size=256))
def test_raw_bytes_raise_only_crl_error(data: bytes) -> None:
    crl_verify.run_one(data)
