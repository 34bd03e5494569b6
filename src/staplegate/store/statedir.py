"""Where fetched staples persist when the operator does not say (`--state-dir`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

ROOT_STATE_DIR = Path("/var/lib/staplegate")
APP_NAME = "staplegate"


def default_state_dir(env: Mapping[str, str], *, is_root: bool) -> Path:
    """The state directory when `--state-dir` is not given.

    In order: `$STATE_DIRECTORY` (set by systemd's `StateDirectory=`; its first entry when it
    lists several, colon-separated), `/var/lib/staplegate` when running as root,
    `$XDG_STATE_HOME/staplegate` (only if absolute, as the XDG spec requires), else
    `~/.local/state/staplegate`.
    """
    systemd = [entry for entry in env.get("STATE_DIRECTORY", "").split(":") if entry]
    if systemd:
        return Path(systemd[0])
    if is_root:
        return ROOT_STATE_DIR
    xdg = env.get("XDG_STATE_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / APP_NAME
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".local" / "state" / APP_NAME


def resolve_state_dir(option: str | Path | None, env: Mapping[str, str], *, is_root: bool) -> Path:
    """`--state-dir` when given (non-empty), else `default_state_dir`."""
    if option is not None and str(option) != "":
        return Path(option)
    return default_state_dir(env, is_root=is_root)
