"""sd_notify: one datagram to $NOTIFY_SOCKET, abstract names included; silent without one."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

from staplegate.process.systemd import sd_notify


def test_the_message_reaches_the_notify_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        sd_notify("READY=1")
        assert listener.recv(100) == b"READY=1"


def test_an_abstract_socket_name_starts_with_at(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"staplegate-test-{os.getpid()}-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        sd_notify("STOPPING=1")
        assert listener.recv(100) == b"STOPPING=1"


def test_without_systemd_or_with_nobody_listening_nothing_happens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    sd_notify("READY=1")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody"))
    sd_notify("READY=1")  # the OSError is swallowed: staplegate runs without systemd too
