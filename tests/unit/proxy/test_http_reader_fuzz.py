"""Bounded differential fuzzing of the HTTP readers against h11 (tests/fuzz_targets).

Seeds mutated by hypothesis (byte flips, inserted framing tokens, cut and spliced
messages) and raw bytes go through `run_one` of each target: where a message ends must
agree with h11, or our reader refuses it. Deterministic (derandomize) and a few seconds;
`bench/fuzz.py` runs the same targets for a million inputs.
"""

from __future__ import annotations

from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz_targets import http_request_reader, http_response_reader

TOKENS = [
    b"\r\n", b"\n", b"\r", b" ", b"\t", b":", b",", b";", b"0", b"1", b"f", b"-", b"+",
    b"\x00", b"\x0b", b"\x7f", b"\xff", b"chunked", b"identity", b"HTTP/1.0", b"HTTP/1.1",
    b"Transfer-Encoding: ", b"Content-Length: ", b"Connection: upgrade\r\n",
    b"Upgrade: x\r\n", b"Connection: close\r\n", b"Host: b\r\n", b"\r\n\r\n",
]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, target: ModuleType) -> bytes:
    seeds: list[bytes] = target.seeds()
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.integers(0, 4))
        if op == 0 and data:
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
        elif op == 1:
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif op == 2:
            del data[at : at + draw(st.integers(1, 4))]
        elif op == 3:
            other = draw(st.sampled_from(seeds))
            data[at:] = other[draw(st.integers(0, len(other))) :]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=3))
    return bytes(data)


@pytest.mark.parametrize(
    "target", [http_request_reader, http_response_reader], ids=lambda t: t.NAME
)
def test_seeds_agree_with_h11(target: ModuleType) -> None:
    for seed in target.seeds():
        target.run_one(seed)


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(st.one_of(mutated(http_request_reader), st.binary(max_size=80)))
def test_request_reader_agrees_with_h11_or_refuses(data: bytes) -> None:
    http_request_reader.run_one(data)


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(st.one_of(mutated(http_response_reader), st.binary(max_size=80)))
def test_response_reader_agrees_with_h11_or_refuses(data: bytes) -> None:
    http_response_reader.run_one(data)
