"""unstapled: the must-staple certificates of a generation that have no staple yet."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

from staplegate.deploy.generation import load_generation
from staplegate.deploy.must_staple import unstapled
from staplegate.testpki.pytest_plugin import Pki

CONFIG = """\
defaults
    timeout connect 1s
    timeout client 1s
    timeout server 1s
frontend one
    bind 127.0.0.1:9 ssl crt {strict} crt {relaxed}
    default_backend web
backend web
    server web1 127.0.0.1:9
"""


def test_only_must_staple_certificates_without_a_staple_are_listed(
    tmp_path: Path, pki: Pki
) -> None:
    strict = pki.issue("strict.example.test", must_staple=True)
    relaxed = pki.issue("relaxed.example.test")
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        CONFIG.format(strict=strict.bundle_path, relaxed=relaxed.bundle_path), encoding="utf-8"
    )
    generation = load_generation([str(config)], now=dt.datetime.now(dt.UTC), err=io.StringIO())
    assert generation is not None
    assert unstapled(generation, {}) == [str(strict.bundle_path)]
    entry = next(e for e in generation.loaded() if e.name == str(strict.bundle_path))
    assert entry.certificate is not None
    assert entry.certificate.cert_id is not None
    assert unstapled(generation, {entry.certificate.cert_id: b"staple"}) == []
