"""`staplegate responder`'s command line: where `-passin` reads the signer key's password."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from staplegate.testpki.responder_cli import PassinError, read_passin


def test_passin_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert read_passin("pass:s3cret") == b"s3cret"
    monkeypatch.setenv("SG_PASS", "from-env")
    assert read_passin("env:SG_PASS") == b"from-env"
    secret = tmp_path / "pass.txt"
    secret.write_text("from-file\nsecond line\n")
    assert read_passin(f"file:{secret}") == b"from-file"
    assert read_passin("stdin", stdin=io.StringIO("typed\n")) == b"typed"
    read_end, write_end = os.pipe()
    os.write(write_end, b"from-fd\n")
    os.close(write_end)
    try:
        assert read_passin(f"fd:{read_end}") == b"from-fd"
    finally:
        os.close(read_end)
    for bad, message in [
        ("env:SG_NOT_SET_ANYWHERE", "not set"),
        (f"file:{tmp_path / 'missing'}", "No such file"),
        ("prompt:x", "use pass:TEXT"),
    ]:
        with pytest.raises(PassinError, match=message):
            read_passin(bad)
