"""`staplegate -c` and start-up judge every configuration the same way (issue 14, defect 10).

Both call `deploy.plan.validate`; the only difference allowed is HAProxy's own: a configuration
without any listener is valid for `-c` (with a warning) and refused at start-up.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest

from staplegate.deploy.plan import validate

CONFIGS = Path(__file__).resolve().parents[2] / "data" / "configs"
NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
WITHOUT_LISTENER = {"01-debian-stock.cfg"}


def verdict(name: str, *, startup: bool) -> tuple[bool, str]:
    err = io.StringIO()
    _generation, plan = validate([name], now=NOW, err=err, startup=startup)
    return plan is not None, err.getvalue()


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.cfg")))
def test_check_and_startup_agree(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CONFIGS)
    checked, check_output = verdict(name, startup=False)
    started, start_output = verdict(name, startup=True)
    if name in WITHOUT_LISTENER:
        assert (checked, started) == (True, False)
        assert "[WARNING] config : no bind to listen on" in check_output
        assert "[ALERT] config : no bind to listen on" in start_output
    else:
        assert checked == started, check_output + start_output


@pytest.mark.parametrize("name", ["18-plain-listeners.cfg"])
def test_plain_binds_are_accepted_by_both(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16: a `bind` without `ssl` is served (mode http and mode tcp, accept-proxy);
    before, both refused it."""
    monkeypatch.chdir(CONFIGS)
    for startup in (False, True):
        accepted, output = verdict(name, startup=startup)
        assert accepted, output
        assert "has no 'ssl'" not in output
