"""The shipped systemd unit is valid and carries the lifecycle the docs promise."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[3] / "contrib" / "systemd" / "staplegate.service"


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is required (./dev setup installs the systemd package)")
    executable = Path(sys.executable).with_name("staplegate")
    assert executable.exists(), "the staplegate console script must be installed"
    unit = tmp_path / "staplegate.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/staplegate", str(executable)))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    # unknown keys are only warnings for systemd: treat any output as a failure
    assert "Unknown key" not in result.stderr, result.stderr
    assert str(unit) not in result.stderr, result.stderr


def test_unit_lifecycle_settings() -> None:
    text = UNIT.read_text()
    assert "Type=notify" in text
    assert "ExecReload=/bin/kill -USR2 $MAINPID" in text
    assert "StateDirectory=staplegate" in text
    assert "CapabilityBoundingSet=CAP_NET_BIND_SERVICE" in text
    assert "NoNewPrivileges=yes" in text
    assert "ProtectSystem=strict" in text
    assert "/etc/staplegate/" in text
