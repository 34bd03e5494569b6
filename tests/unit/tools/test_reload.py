"""`staplegate reload`: SIGUSR2 to the master named by pid or pidfile, or a message why not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from staplegate.tools.reload import main

# exits 7 on SIGUSR2; says "ready" once the handler is in place (the readiness signal)
TRAPS_SIGUSR2 = (
    "import signal, sys\n"
    "signal.signal(signal.SIGUSR2, lambda *_: sys.exit(7))\n"
    "print('ready', flush=True)\n"
    "signal.pause()\n"
)


def test_the_pid_in_the_pidfile_gets_sigusr2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", TRAPS_SIGUSR2], stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "ready\n"
            pidfile = tmp_path / "staplegate.pid"
            pidfile.write_text(f"{child.pid}\n", encoding="ascii")
            assert main(["-p", str(pidfile)]) == 0
            assert child.wait(timeout=10) == 7
        finally:
            child.kill()
    assert capsys.readouterr().out == f"reload requested from process {child.pid}\n"


def test_a_process_that_is_gone_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: its pid names no process (until the kernel reuses it)
    assert main([str(gone.pid)]) == 1
    assert f"no process {gone.pid}" in capsys.readouterr().err


def test_an_unreadable_or_empty_pidfile_says_what_to_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-p", str(tmp_path / "absent.pid")]) == 1
    assert "is staplegate running with -p?" in capsys.readouterr().err
    empty = tmp_path / "empty.pid"
    empty.write_text("\n", encoding="ascii")
    assert main(["-p", str(empty)]) == 1
    assert "no pid in" in capsys.readouterr().err
