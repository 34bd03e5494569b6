"""Where the state directory is when --state-dir is not given (DESIGN.md, OCSP persistence)."""

from __future__ import annotations

from pathlib import Path

import pytest

from staplegate.store import default_state_dir, resolve_state_dir

HOME = {"HOME": "/home/alice"}


def test_systemd_state_directory_wins_even_as_root() -> None:
    env = {"STATE_DIRECTORY": "/var/lib/staplegate-blue", **HOME}
    assert default_state_dir(env, is_root=True) == Path("/var/lib/staplegate-blue")
    assert default_state_dir(env, is_root=False) == Path("/var/lib/staplegate-blue")


def test_systemd_lists_several_directories_the_first_is_used() -> None:
    env = {"STATE_DIRECTORY": "/var/lib/one:/var/lib/two"}
    assert default_state_dir(env, is_root=True) == Path("/var/lib/one")
    assert default_state_dir({"STATE_DIRECTORY": ":/var/lib/two"}, is_root=True) == Path(
        "/var/lib/two"
    )


def test_empty_state_directory_is_as_if_unset() -> None:
    assert default_state_dir({"STATE_DIRECTORY": ""}, is_root=True) == Path("/var/lib/staplegate")


def test_root_without_systemd() -> None:
    env = {"XDG_STATE_HOME": "/home/alice/.xdg", **HOME}
    assert default_state_dir(env, is_root=True) == Path("/var/lib/staplegate")


def test_user_with_xdg_state_home() -> None:
    env = {"XDG_STATE_HOME": "/home/alice/.state", **HOME}
    assert default_state_dir(env, is_root=False) == Path("/home/alice/.state/staplegate")


@pytest.mark.parametrize("xdg", ["", "relative/state"])
def test_user_without_usable_xdg_state_home(xdg: str) -> None:
    env = {"XDG_STATE_HOME": xdg, **HOME}
    assert default_state_dir(env, is_root=False) == Path("/home/alice/.local/state/staplegate")


def test_user_without_home_in_the_environment_uses_the_password_database() -> None:
    found = default_state_dir({}, is_root=False)
    assert found == Path.home() / ".local" / "state" / "staplegate"


def test_option_overrides_everything() -> None:
    env = {"STATE_DIRECTORY": "/var/lib/x", **HOME}
    assert resolve_state_dir("/srv/staples", env, is_root=True) == Path("/srv/staples")
    assert resolve_state_dir(Path("rel/dir"), env, is_root=False) == Path("rel/dir")
    assert resolve_state_dir(None, env, is_root=False) == Path("/var/lib/x")
    assert resolve_state_dir("", env, is_root=False) == Path("/var/lib/x")
