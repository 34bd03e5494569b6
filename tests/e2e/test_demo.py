"""The README's first command runs this demo: it must build everything and show a staple."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_builds_everything_and_staples(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "staplegate.tools.demo",
            "--dir",
            str(tmp_path / "demo"),
            "--port",
            "0",
            "--for",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout
    assert '<OCSP-UPDATE> @demo/api 1 "Update successful" 0 1' in result.stdout
    assert "Cert Status: good" in result.stdout
    assert "curl --cert-status: Hello from the demo backend" in result.stdout
    assert "Stapling works." in result.stdout
    assert (tmp_path / "demo" / "pki" / "index.txt").exists()
    assert len(list((tmp_path / "demo" / "state").glob("*.ocsp"))) == 2
