"""`read_extra_settings`: `--extra-config` read alone, for the nginx sidecar's OCSP settings."""

from __future__ import annotations

from pathlib import Path

from staplegate.sidecar.haproxy_config import read_extra_settings


def test_the_global_ocsp_lines_become_the_settings(tmp_path: Path) -> None:
    extra = tmp_path / "extra.cfg"
    extra.write_text("global\n    ocsp-update.maxdelay 600\n    ocsp-update.mindelay 60\n")
    discovery = read_extra_settings([str(extra)], env={})
    assert discovery.ok, discovery.errors
    assert (discovery.settings.ocsp_update_maxdelay, discovery.settings.ocsp_update_mindelay) == (
        600,
        60,
    )
    assert discovery.certificates == ()


def test_a_missing_file_is_an_alert_and_other_lines_a_warning(tmp_path: Path) -> None:
    extra = tmp_path / "extra.cfg"
    extra.write_text("global\n    maxconn 10\n")
    discovery = read_extra_settings([str(extra), str(tmp_path / "absent.cfg")], env={})
    assert any("maxconn" in line for line in discovery.messages)
    assert any("Could not open --extra-config file" in line for line in discovery.errors)
