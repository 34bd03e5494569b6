"""Bounded, deterministic fuzzing of the runtime command grammar (tests/fuzz_targets)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz_targets import runtime_grammar

SEEDS = runtime_grammar.seeds()
#: Bytes that matter to the grammar and to the answer layouts, for insertion.
TOKENS = [
    b"\n", b"\r\n", b"<<", b" <<\n", b";", b"\\", b"\t", b"\x00", b":", b": ", b" | ", b"# ",
    b",", b'"', b"[", b"]", "\u00b2".encode(), "\u0661".encode(), b"\xff",
]  # fmt: skip
FUZZ = settings(
    max_examples=800,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def mutated_seed(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        position = draw(st.integers(min_value=0, max_value=len(data)))
        action = draw(st.sampled_from(("insert", "delete", "flip", "repeat")))
        if action == "insert":
            data[position:position] = draw(st.binary(max_size=8) | st.sampled_from(TOKENS))
        elif action == "delete":
            del data[position : position + draw(st.integers(min_value=1, max_value=8))]
        elif action == "flip" and data:
            index = min(position, len(data) - 1)
            data[index] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif action == "repeat":
            data[position:position] = data[position : position + 40] * draw(
                st.integers(min_value=1, max_value=6)
            )
    return bytes(data)


def test_seeds_pass() -> None:
    for seed in SEEDS:
        runtime_grammar.run_one(seed)


@FUZZ
@given(mutated_seed())
def test_mutated_seeds(data: bytes) -> None:
    runtime_grammar.run_one(data)


@FUZZ
@given(st.binary(max_size=400))
def test_raw_bytes(data: bytes) -> None:
    runtime_grammar.run_one(data)


#: Pieces of the `show` answers' layouts; texts built from them reach every branch.
ANSWER_PIECES = [
    "\n", "# ", ": ", ":", " | ", ",", '"', "[", "]", " ", "-", "/x.pem", "2", "\u00b2",
    "\u0661", "Name", "# Certificate IDs", "Certificate ID key : ", "Certificate path : ",
    "# transaction", "# filename", "# pxname,svname,", "1", "\x00", "\r",
]  # fmt: skip


@FUZZ
@given(st.lists(st.sampled_from(ANSWER_PIECES), max_size=40).map("".join))
def test_answer_layouts(text: str) -> None:
    runtime_grammar.run_one(text.encode())
