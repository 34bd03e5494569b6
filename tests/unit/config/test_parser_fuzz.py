"""Bounded fuzzing of the configuration parsers (tests/fuzz_targets/config_parser.py).

Mutations of the suite's configuration fixtures and raw text: only diagnostics may come
out. Deterministic (derandomized) so CI sees the same inputs every run.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz_targets import config_parser

SEEDS = config_parser.seeds()
# the words that steer the parser into its branches, spliced into the seeds
VOCABULARY = [
    "\n", " ", "\t", '"', "'", "\\", "#", "$", "${X}", "[", "]", "{", "}", "%[", "%{+Q}[",
    "global", "defaults", "frontend", "backend", "listen", "crt-store", "bind", "server",
    "ssl", "crt", "crt-list", "verify", "required", "ca-file", "crl-file", "ca-ignore-err",
    "crt-ignore-err", "all", "use_backend", "if", "unless", "!", "acl", "http-request",
    "set-header", "ssl_c_s_dn(CN)", "ssl_c_verify", "option", "timeout", "1s", ":443",
    "127.0.0.1:", "[::1]:", "ipv4@", "", "load", "ocsp-update", "on", "mode", "http",
]  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    text = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        position = draw(st.integers(0, len(text)))
        action = draw(st.integers(0, 2))
        if action == 0:
            text[position:position] = draw(st.sampled_from(VOCABULARY)).encode()
        elif action == 1:
            del text[position : position + draw(st.integers(1, 40))]
        else:
            text[position:position] = draw(st.binary(max_size=8))
    return bytes(text)


@settings(
    max_examples=600,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated())
def test_mutated_configurations_only_give_diagnostics(data: bytes) -> None:
    config_parser.run_one(data)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(VOCABULARY), max_size=60).map(lambda w: "".join(w).encode()))
def test_vocabulary_soup_only_gives_diagnostics(data: bytes) -> None:
    config_parser.run_one(data)


def test_every_seed_runs() -> None:
    for seed in SEEDS:
        config_parser.run_one(seed)
