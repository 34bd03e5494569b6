"""`staplegate ctl`: which addresses mean TCP and which a Unix path, and the failure message.

The answers themselves are read from a live runtime socket in
tests/integration/runtime/test_server.py.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from staplegate.tools.ctl import CtlError, connect, main


def test_host_port_forms_connect_over_tcp_and_paths_over_unix(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        for target in (f"127.0.0.1:{port}", f"ipv4@127.0.0.1:{port}", f"tcp@127.0.0.1:{port}"):
            with connect(target, timeout=5) as sock:
                assert sock.family is socket.AF_INET
    path = tmp_path / "stats.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen()
        for target in (str(path), f"unix@{path}"):
            with connect(target, timeout=5) as sock:
                assert sock.family is socket.AF_UNIX


def test_an_unreachable_socket_says_what_to_check(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        closed = f"127.0.0.1:{listener.getsockname()[1]}"  # nothing listens once closed
    with pytest.raises(CtlError, match=r"cannot connect to the stats socket 127\.0\.0\.1:x"):
        connect("127.0.0.1:x", timeout=5)  # not a port
    assert main(["-S", closed, "show", "info"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"staplegate ctl: cannot connect to the stats socket {closed}:")
    assert "check the path (-S)" in err


def test_a_missing_unix_socket_leaks_no_descriptor(tmp_path: Path) -> None:
    with pytest.raises(CtlError, match="check the path \\(-S\\)"):
        connect(str(tmp_path / "absent.sock"), timeout=5)
