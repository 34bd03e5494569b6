"""`staplegate sidecar`'s arguments: the `-c` listing, and refusals that are one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from staplegate.cli import main
from staplegate.testpki.pytest_plugin import Pki


def _config(tmp_path: Path, pki: Pki, *, socket: bool = True) -> Path:
    a = pki.issue("a.test")
    b = pki.issue("b.test")
    crt_list = tmp_path / "list.txt"
    crt_list.write_text(f"{a.bundle_path} [ocsp-update on]\n{b.bundle_path}\n")
    config = tmp_path / "haproxy.cfg"
    stats = f"    stats socket {tmp_path / 'admin.sock'} level admin\n" if socket else ""
    config.write_text(f"global\n{stats}frontend f\n    bind :443 ssl crt-list {crt_list}\n")
    return config


def test_check_lists_every_certificate_with_its_update_and_source(
    tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, pki)
    assert main(["sidecar", "-c", "-f", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "# certificate\tupdates\tOCSP URI\tsource"
    assert out[1].split("\t") == [
        str(tmp_path / "ca" / "issued" / "a.test.pem"),
        "on",
        pki.responder.url,
        f"{tmp_path / 'list.txt'}:1",
    ]
    assert out[2].split("\t")[1] == "off (ocsp-update off; use --all)"
    assert out[3] == (
        "# 1 certificate(s) kept stapled, 1 not; HAProxy runtime API: "
        f"{tmp_path / 'admin.sock'} (stats socket at {config}:2)"
    )
    assert main(["sidecar", "-c", "--all", "-f", str(config)]) == 0
    assert "# 2 certificate(s) kept stapled, 0 not" in capsys.readouterr().out


def test_check_exits_1_on_an_alert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "haproxy.cfg"
    config.write_text(f"frontend f\n    bind :443 ssl crt {tmp_path / 'gone.pem'}\n")
    assert main(["sidecar", "-c", "-f", str(config)]) == 1
    err = capsys.readouterr().err
    assert f"[ALERT] config : parsing [{config}:2] : '{tmp_path / 'gone.pem'}'" in err
    assert "[ALERT] sidecar : Fatal errors found in configuration." in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "no configuration given"),
        (["--haproxy-socket", "abns@x"], "--haproxy-socket 'abns@x': only Unix socket paths"),
        (
            ["--nginx", "/etc/nginx/nginx.conf", "--write-ocsp", "--all"],
            "--write-ocsp, --all cannot be combined with --nginx",
        ),
    ],
)
def test_refusals_are_one_alert_line(
    tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = [] if not args or args[0] == "--nginx" else ["-f", str(tmp_path / "x.cfg")]
    assert main(["sidecar", *config, *args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("[ALERT] sidecar : ")
    assert message in err


def test_nowhere_to_deliver_is_refused(
    tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, pki, socket=False)
    assert main(["sidecar", "-f", str(config), "--state-dir", str(tmp_path / "s")]) == 1
    assert "nowhere to deliver staples" in capsys.readouterr().err


def test_a_configuration_with_errors_does_not_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "haproxy.cfg"
    config.write_text(f"frontend f\n    bind :443 ssl crt {tmp_path / 'gone.pem'}\n")
    args = ["sidecar", "-f", str(config), "--write-ocsp", "--state-dir", str(tmp_path / "s")]
    assert main(args) == 1
    assert "Fatal errors found in configuration" in capsys.readouterr().err
