"""The OCSP verifier on mutated real DER (tests/fuzz_targets/ocsp_verify.py), bounded.

Only VerificationError may escape `verify_response`, and an altered signed part is never
accepted. Hypothesis mutates the target's seeds (deterministic: derandomized, fixed seeds);
`bench/fuzz.py` runs the same target for a million inputs.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz_targets import ocsp_verify
from tests.ocsp_der import tbs_response_data

SEEDS = ocsp_verify.seeds()
FUZZ = settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed with 1-4 byte-level edits: flips, overwrites, inserts, deletes, cuts, repeats."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        edit = draw(st.sampled_from(["flip", "set", "insert", "delete", "cut", "repeat"]))
        if edit == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "set":
            data[at] = draw(st.sampled_from([0x00, 0x01, 0x02, 0x03, 0x05, 0x30, 0x7F, 0x80, 0xFF]))
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif edit == "delete":
            del data[at : at + draw(st.integers(1, 4))]
        elif edit == "cut":
            del data[at:]
        else:
            end = min(len(data), at + draw(st.integers(1, 32)))
            data[at:at] = data[at:end]
    return bytes(data)


@st.composite
def signed_part_altered(draw: st.DrawFn) -> bytes:
    """A verifying seed with one byte of its tbsResponseData changed (same length)."""
    seed = draw(st.sampled_from(SEEDS[:3]))
    tbs = tbs_response_data(seed)
    start = seed.index(tbs)
    at = start + draw(st.integers(0, len(tbs) - 1))
    value = draw(st.integers(0, 255).filter(lambda b: b != seed[at]))
    return seed[:at] + bytes([value]) + seed[at + 1 :]


@pytest.mark.parametrize("index", range(len(SEEDS)))
def test_every_seed_runs_clean(index: int) -> None:
    ocsp_verify.run_one(SEEDS[index])


@FUZZ
@given(mutated())
def test_mutated_responses_raise_only_verification_errors(data: bytes) -> None:
    ocsp_verify.run_one(data)


@settings(FUZZ, max_examples=300)
@given(st.binary(max_size=600))
def test_raw_bytes_raise_only_verification_errors(data: bytes) -> None:
    ocsp_verify.run_one(data)


@settings(FUZZ, max_examples=500)
@given(signed_part_altered())
def test_an_altered_signed_part_is_never_accepted(data: bytes) -> None:
    ocsp_verify.run_one(data)


def test_every_single_bit_flip_of_a_signed_part_is_refused() -> None:
    """Exhaustively for one seed: each of tbsResponseData's bits flipped in turn."""
    seed = SEEDS[0]
    tbs = tbs_response_data(seed)
    start = seed.index(tbs)
    for at in range(start, start + len(tbs)):
        for bit in (0x01, 0x80):
            ocsp_verify.run_one(seed[:at] + bytes([seed[at] ^ bit]) + seed[at + 1 :])
