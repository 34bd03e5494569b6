"""The command line: what it refuses before starting anything, and how an OSError reads.

Starting the server (`staplegate -f CFG`) is e2e's part (tests/e2e/test_cli_errors_e2e.py);
these run `main` in-process on the paths that end before app.run.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from staplegate.cli import SUBCOMMANDS, _command_name, describe_os_error, main
from staplegate.clock import CLOCK_OFFSET_VARIABLE


def test_an_os_error_reads_as_its_paths_and_reason() -> None:
    missing = FileNotFoundError(2, "No such file or directory", "/etc/sg.cfg")
    assert describe_os_error(missing) == "'/etc/sg.cfg': No such file or directory"
    renamed = OSError(18, "Invalid cross-device link", "/a", None, "/b")
    assert describe_os_error(renamed) == "'/a' -> '/b': Invalid cross-device link"
    assert describe_os_error(OSError("socket closed")) == "socket closed"
    assert describe_os_error(OSError()) == "OSError"


def test_the_command_name_is_the_words_before_the_first_path_or_option() -> None:
    assert _command_name(["ca", "init", "/srv/ca"]) == "staplegate ca init"
    assert _command_name(["ocsp", "/x.pem"]) == "staplegate ocsp"
    assert _command_name(["-f", "x.cfg"]) == "staplegate"
    assert _command_name([]) == "staplegate"


def test_every_subcommand_module_has_a_main() -> None:
    for module in SUBCOMMANDS.values():
        assert callable(importlib.import_module(module).main), module


def test_without_a_configuration_nothing_starts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 1
    assert "[ALERT] No configuration file specified (use -f FILE)." in capsys.readouterr().err


def test_sf_and_st_are_refused_with_the_reload_to_use(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-f", "x.cfg", "-sf", "123"]) == 1
    assert "Send SIGUSR2 to the master" in capsys.readouterr().err


def test_a_bad_clock_offset_stops_every_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CLOCK_OFFSET_VARIABLE, "tomorrow")
    assert main(["ocsp", "--help"]) == 1
    assert capsys.readouterr().err.startswith(f"[ALERT] {CLOCK_OFFSET_VARIABLE}='tomorrow'")


def test_an_os_error_from_a_subcommand_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("", encoding="utf-8")
    assert main(["ca", "init", str(not_a_directory / "ca")]) == 1
    err = capsys.readouterr().err
    assert err == f"staplegate ca init: '{not_a_directory / 'ca'}': Not a directory\n"
