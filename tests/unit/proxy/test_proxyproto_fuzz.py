"""The PROXY v1 and v2 fuzz targets (tests/fuzz_targets) on bounded, deterministic inputs:
mutated real headers and raw bytes. `bench/fuzz.py` runs the same targets a million times."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz_targets import proxy_v1, proxy_v2

# bytes that matter to a PROXY line or header: separators, zone IDs, signs, line ends
_INTERESTING = [b" ", b"%", b"\n", b"\r\n", b"\r", b"\x00", b"+", b"_", b":", b".", b"-", b"9"]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):
        operation = draw(st.integers(0, 3))
        position = draw(st.integers(0, len(data)))
        if operation == 0 and data:
            data[min(position, len(data) - 1)] = draw(st.integers(0, 255))
        elif operation == 1:
            data[position:position] = draw(st.sampled_from(_INTERESTING) | st.binary(max_size=4))
        elif operation == 2:
            del data[position : position + draw(st.integers(1, 8))]
        else:
            del data[position:]
    return bytes(data)


_V2_SIGNATURE = proxy_v2.seeds()[4][:12]
_FUZZ = settings(
    max_examples=1000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@_FUZZ
@given(mutated(proxy_v1.seeds()) | st.binary(max_size=110).map(lambda b: b"PROXY " + b))
def test_proxy_v1_target(data: bytes) -> None:
    proxy_v1.run_one(data)


@_FUZZ
@given(
    mutated(proxy_v2.seeds()) | st.binary(max_size=80).map(lambda b: proxy_v2.seeds()[4][:12] + b)
)
def test_proxy_v2_target(data: bytes) -> None:
    proxy_v2.run_one(data)


def test_the_seeds_parse() -> None:
    for target in (proxy_v1, proxy_v2):
        for seed in target.seeds():
            target.run_one(seed)
