"""Bounded fuzzing of the sidecar's HAProxy reader (tests/fuzz_targets/sidecar_haproxy_config.py).

Deterministic (derandomized) so CI sees the same inputs every run; bench/fuzz.py runs the same
target for a million inputs.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz_targets import sidecar_haproxy_config as target

SEEDS = target.seeds()
VOCABULARY = [
    "\n", " ", '"', "'", "\\", "#", "${X}", "[", "]", "global", "frontend", "listen",
    "crt-store", "bind", "crt", "crt-list", "list.txt", "site.pem", "@web/s", "@/x", "load",
    "alias", "ocsp-update", "on", "off", "maybe", "ocsp-update.mode", "ocsp-update.disable",
    "ssl-load-extra-files", "none", "all", "crt-base", "key-base", "stats", "socket", "level",
    "admin", ".if", ".else", "/dev/null", ".", "..", "ocsp", "issuer", "key",
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
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated())
def test_mutated_configurations_only_give_alerts_and_warnings(data: bytes) -> None:
    target.run_one(data)


def test_every_seed_runs() -> None:
    for seed in SEEDS:
        target.run_one(seed)
