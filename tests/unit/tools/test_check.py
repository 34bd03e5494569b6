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
from staplegate.tools.check import run_check

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


def test_verbose_lists_the_stats_pages_and_their_admin_condition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "stats.cfg"
    config.write_text(
        "frontend ro\n    bind 127.0.0.1:8404\n    mode http\n    stats uri /ro\n"
        "listen rw\n    bind 127.0.0.1:8405\n    mode http\n    stats uri /\n"
        "    acl LOCAL src 127.0.0.1\n    stats admin if LOCAL\n",
        encoding="utf-8",
    )
    assert run_check([str(config)], verbose=True) == 0
    out = capsys.readouterr().out
    report = out[out.index("Stats pages:") :].splitlines()
    assert report[1].split() == ["ro", "/ro", "read-only"]
    assert report[2].split() == ["rw", "/", "stats", "admin", "if", "LOCAL"]
