"""The stats-socket server: framing, prompt mode, caps, vanished clients, levels, socket files,
servers/info/stat answers, socat and `staplegate ctl` as clients."""

from __future__ import annotations

import asyncio
import grp
import json
import os
import pwd
import socket
import stat
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from staplegate.config.model import Config, StatsLevel
from staplegate.config.parser.dispatch import parse_texts
from staplegate.config.semantic import build_config
from staplegate.config.values import AddressFamily, SocketAddress
from staplegate.runtime.grammar import COMMANDS, CommandName
from staplegate.runtime.server import (
    Listener,
    RuntimeServer,
    RuntimeServerError,
    listeners_from_config,
)
from staplegate.testpki.pytest_plugin import Pki

from .runtime_harness import WAIT, Lab, ask, lab, unix

pytestmark = pytest.mark.openssl

T = TypeVar("T")


def run(
    pki: Pki,
    tmp_path: Path,
    body: Callable[[Lab], Coroutine[Any, Any, T]],
    extra: tuple[Listener, ...] = (),
) -> T:
    async def main() -> T:
        async with lab(pki, tmp_path, extra=extra) as env:
            return await body(env)

    return asyncio.run(main())


async def shell(command: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_shell(
        command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(WAIT * 3):
        out, err = await process.communicate(stdin)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


CTL = f"{sys.executable} -m staplegate ctl"


def test_framing_partial_lines_semicolons_and_prompt(pki: Pki, tmp_path: Path) -> None:
    async def body(env: Lab) -> tuple[str, str, str, str]:
        path = env.sockets[StatsLevel.ADMIN]
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"show serv")
        await writer.drain()
        # one loop turn, so the server likely reads the partial line alone; the answer must be
        # the same whichever way the bytes arrive, so no readiness hangs on it
        await asyncio.sleep(0)
        writer.write(b"ers state be_app; show servers state nope\n")
        await writer.drain()
        async with asyncio.timeout(WAIT):
            split = (await reader.read()).decode()
        writer.close()
        prompt = await ask(path, "prompt\nshow servers state nope\n\nquit\n")
        two_lines = await ask(path, "show servers state nope\nshow info\n")
        eof = await ask(path, "show servers state nope")  # no newline: runs at EOF
        return split, prompt, two_lines, eof

    split, prompt, two_lines, eof = run(pki, tmp_path, body)
    state, unknown = split.split("\n\n", 1)
    assert state.startswith("1\n# be_id be_name srv_id")
    assert unknown == "Can't find backend.\n\n"
    assert prompt == "> Can't find backend.\n\n> > "
    assert two_lines == "Can't find backend.\n\n"  # non-interactive: one line, then close
    assert eof == "Can't find backend.\n\n"


def test_overlong_line_and_vanishing_clients_do_not_hurt_the_server(
    pki: Pki, tmp_path: Path
) -> None:
    async def body(env: Lab) -> tuple[str, str, str]:
        path = env.sockets[StatsLevel.USER]
        overlong = await ask(path, b"x" * (20 * 1024))
        # a client that sends half a command and vanishes
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.connect(str(path))
        raw.sendall(b"show ssl ocsp-")
        raw.close()
        # a client that asks for a long answer and resets before reading it
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.connect(str(path))
        raw.sendall(b"show ssl ocsp-response " + env.name("www").encode() + b"\n")
        raw.close()
        after = await ask(path, "show servers state nope\n")
        help_text = await ask(path, "frobnicate\n")
        return overlong, after, help_text

    overlong, after, help_text = run(pki, tmp_path, body)
    assert overlong == (
        "Command line too long: the runtime API accepts at most 16384 bytes per line; use a "
        "payload (`<command> <<`) for long data.\n\n"
    )
    assert after == "Can't find backend.\n\n"
    assert help_text.startswith(
        "Unknown command: 'frobnicate'\n\nThe following commands are valid at this level:\n"
    )
    assert "set ssl ocsp-response" not in help_text  # admin-only commands are not listed


@pytest.mark.parametrize(
    "command",
    [
        "show info",
        "show stat",
        "show servers state",
        "show ssl cert",
        "show ssl crt-list",
        "show ssl ocsp-response",
        "show ssl ocsp-updates",
        "update ssl ocsp-response /x.pem",
        "set ssl ocsp-response QUJD",
        "set server be_app/app1 state maint",
        "disable server be_app/app1",
        "enable server be_app/app1",
        "new ssl cert /x.pem",
        "commit ssl cert /x.pem",
        "abort ssl cert /x.pem",
        "del ssl cert /x.pem",
    ],
)
def test_every_command_enforces_its_level(pki: Pki, tmp_path: Path, command: str) -> None:
    words = command.split()
    spec = next(s for s in COMMANDS if tuple(words[: len(s.words)]) == s.words)

    async def body(env: Lab) -> dict[StatsLevel, str]:
        return {level: await ask(env.sockets[level], command + "\n") for level in StatsLevel}

    answers = run(pki, tmp_path, body)
    for level, answer in answers.items():
        if level < spec.level:
            assert answer == "Permission denied\n\n", (level, command)
        else:
            assert answer != "Permission denied\n\n", (level, command)
    assert spec.name is not CommandName.HELP


def test_servers_state_and_admin_changes(pki: Pki, tmp_path: Path) -> None:
    async def body(env: Lab) -> list[str]:
        admin = env.sockets[StatsLevel.ADMIN]
        return [
            await ask(admin, "show servers state\n"),
            await ask(admin, "set server be_app/app1 state drain\n"),
            await ask(admin, "disable server be_app/app2\n"),
            await ask(admin, "show servers state be_app\n"),
            await ask(admin, "enable server be_app/app2\n"),
            await ask(admin, "set server be_app/app1 state sleepy\n"),
            await ask(admin, "set server be_app/nope state ready\n"),
            await ask(admin, "set server nope/app1 state ready\n"),
            await ask(admin, "disable server app1\n"),
            await ask(admin, "set server be_app/app1 weight 3\n"),
            str([v.admin.value for v in env.backend.server_views]),
        ]

    answers = run(pki, tmp_path, body)
    header = (
        "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight "
        "srv_iweight srv_time_since_last_change srv_check_status srv_check_result "
        "srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id "
        "srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr "
        "srv_agent_port\n"
    )
    assert answers[0] == (
        header
        + "3 be_app 1 app1 127.0.0.1 2 0 1 1 0 6 3 4 6 0 0 0 - 8081 - 0 0 - - 0\n"
        + "3 be_app 2 app2 127.0.0.1 0 0 1 1 0 0 0 0 0 0 0 0 - 8082 - 0 0 - - 0\n\n"
    )
    assert answers[1] == answers[2] == answers[4] == "\n"
    assert answers[3] == (
        header
        + "3 be_app 1 app1 127.0.0.1 2 8 1 1 0 6 3 4 6 0 0 0 - 8081 - 0 0 - - 0\n"
        + "3 be_app 2 app2 127.0.0.1 0 1 1 1 0 0 0 0 0 0 0 0 - 8082 - 0 0 - - 0\n\n"
    )
    assert answers[5] == "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n\n"
    assert answers[6] == "No such server.\n\n"
    assert answers[7] == "No such backend.\n\n"
    assert answers[8] == "Require 'backend/server'.\n\n"
    assert answers[9].startswith("'set server <srv> weight' is not supported")
    assert answers[10] == "['drain', 'ready']"


def test_show_info_and_show_stat(pki: Pki, tmp_path: Path) -> None:
    async def body(env: Lab) -> tuple[str, str, str]:
        return (
            await ask(env.sockets[StatsLevel.USER], "show info\n"),
            await ask(env.sockets[StatsLevel.USER], "show stat\n"),
            await ask(env.sockets[StatsLevel.OPERATOR], "show stat\n"),
        )

    info, user_stat, operator_stat = run(pki, tmp_path, body)
    assert info == (
        f"Name: staplegate\nVersion: 0.1\nPid: {os.getpid()}\nUptime_sec: 5\n"
        "OcspEntries: 2\nOcspStapled: 2\nOcspUpdateSuccesses: 2\nOcspUpdateFailures: 0\n"
        "OcspRevoked: 0\nOcspMustStapleUnstapled: 0\n\n"
    )
    header = user_stat.split("\n")[0]
    assert header.startswith("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,")
    assert header.endswith(
        ",h3req,proto,-,ocsp_certs,ocsp_stapled,ocsp_update_ok,ocsp_update_err,ocsp_revoked,"
    )
    names = header[2:].rstrip(",").split(",")
    rows = [line.split(",") for line in user_stat.split("\n")[1:] if line]
    assert all(len(row) == len(names) + 1 and row[-1] == "" for row in rows)  # trailing comma
    frontend = dict(zip(names, rows[0], strict=False))
    assert (frontend["pxname"], frontend["svname"], frontend["status"]) == (
        "fe_tls",
        "FRONTEND",
        "OPEN",
    )
    assert (frontend["ocsp_certs"], frontend["ocsp_stapled"], frontend["ocsp_update_ok"]) == (
        "2",
        "2",
        "2",
    )
    assert frontend["-"] == "-"
    server_user = dict(zip(names, rows[1], strict=False))
    assert server_user["addr"] == ""  # hidden below operator level, as in HAProxy
    operator_rows = [line.split(",") for line in operator_stat.split("\n")[1:] if line]
    assert dict(zip(names, operator_rows[1], strict=False))["addr"] == "127.0.0.1:8081"
    assert dict(zip(names, operator_rows[3], strict=False))["algo"] == "roundrobin"


def test_socat_and_staplegate_ctl_get_the_same_answers(pki: Pki, tmp_path: Path) -> None:
    """CI needs socat (apt-get install -y socat)."""

    async def body(env: Lab) -> dict[str, Any]:
        user, admin = env.sockets[StatsLevel.USER], env.sockets[StatsLevel.ADMIN]
        out: dict[str, Any] = {}
        out["direct"] = await ask(user, "show ssl ocsp-updates\n")
        out["socat"] = await shell(f"echo 'show ssl ocsp-updates' | socat stdio unix:{user}")
        out["ctl"] = await shell(f"{CTL} -S {user} show ssl ocsp-updates")
        out["json_info"] = await shell(f"{CTL} -S {user} --json show info")
        out["json_updates"] = await shell(f"{CTL} -S {user} --json show ssl ocsp-updates")
        out["json_stat"] = await shell(f"{CTL} -S {user} --json show stat")
        out["denied"] = await shell(f"{CTL} -S {user} set ssl ocsp-response QUJD")
        b64 = (await ask(user, f"show ssl ocsp-response base64 {env.name('www')}\n")).strip()
        wrapped = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64)) + "\n"
        out["payload"] = await shell(
            f"{CTL} -S {admin} set ssl ocsp-response '<<'", stdin=wrapped.encode()
        )
        out["nowhere"] = await shell(f"{CTL} -S {env.directory}/none.sock show info")
        out["names"] = [env.name("www"), env.name("shop")]
        return out

    out = run(pki, tmp_path, body)
    direct = out["direct"]
    assert out["socat"] == (0, direct, "")
    assert out["ctl"] == (0, direct.removesuffix("\n"), "")
    code, text, _ = out["json_info"]
    assert code == 0
    assert json.loads(text)["OcspEntries"] == "2"
    code, text, _ = out["json_updates"]
    updates = json.loads(text)
    assert sorted(row["Path"] for row in updates) == sorted(out["names"])
    assert all(row["Last Update Status (str)"] == "Update successful" for row in updates)
    rows = json.loads(out["json_stat"][1])
    assert rows[0]["svname"] == "FRONTEND"
    assert rows[0]["ocsp_stapled"] == "2"
    assert out["denied"] == (1, "Permission denied\n", "")
    assert out["payload"] == (0, "OCSP Response updated!\n", "")
    code, text, err = out["nowhere"]
    assert code == 2
    assert text == ""
    assert "cannot connect to the stats socket" in err


def test_unix_socket_modes_stale_files_and_tcp(pki: Pki, tmp_path: Path) -> None:
    stale = tmp_path / "stale.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(stale))
    dead.close()  # a socket file nobody listens on
    grouped = tmp_path / "group.sock"
    tcp = Listener(SocketAddress(AddressFamily.IPV4, "127.0.0.1", 0), StatsLevel.USER)
    extra = (
        Listener(unix(stale), StatsLevel.USER),
        Listener(unix(grouped), StatsLevel.ADMIN, mode=0o660),
        tcp,
    )

    async def body(env: Lab) -> dict[str, Any]:
        out: dict[str, Any] = {}
        out["default_mode"] = stat.S_IMODE(env.sockets[StatsLevel.ADMIN].stat().st_mode)
        out["group_mode"] = stat.S_IMODE(grouped.stat().st_mode)
        out["stale"] = await ask(stale, "show servers state nope\n")
        host, port = env.server.bound[-1].rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"show servers state nope\n")
        out["tcp"] = (await reader.read()).decode()
        writer.close()
        await writer.wait_closed()
        rival = RuntimeServer([Listener(unix(env.sockets[StatsLevel.USER]))], env.handlers)
        try:
            await rival.start()
        except RuntimeServerError as exc:
            out["rival"] = str(exc)
        not_socket = tmp_path / "plain.file"
        not_socket.write_text("x")
        other = RuntimeServer([Listener(unix(not_socket))], env.handlers)
        try:
            await other.start()
        except RuntimeServerError as exc:
            out["not_socket"] = str(exc)
        out["still_serving"] = await ask(env.sockets[StatsLevel.USER], "show servers state nope\n")
        return out

    out = run(pki, tmp_path, body, extra)
    assert out["default_mode"] == 0o600
    assert out["group_mode"] == 0o660
    assert out["stale"] == out["tcp"] == out["still_serving"] == "Can't find backend.\n\n"
    assert "another process is serving it" in out["rival"]
    assert "is not a socket" in out["not_socket"]
    assert not (tmp_path / "admin.sock").exists()  # close() removed our socket files
    assert not stale.exists()


def check_config(text: str) -> tuple[Config | None, list[str]]:
    """Parse an in-memory t.cfg as `staplegate -c` would; the config and each diagnostic."""
    config, diagnostics = build_config(parse_texts([("t.cfg", text)], env={}))
    return config, [str(d) for d in diagnostics]


def _own_names() -> tuple[str, str]:
    """A user and a group this process may give a socket: itself as non-root, others as root."""
    if os.geteuid() == 0:
        return "nobody", grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name
    return pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name


def test_stats_socket_user_and_group_from_the_config_own_the_socket(
    pki: Pki, tmp_path: Path
) -> None:
    user, group = _own_names()
    owned = tmp_path / "owned.sock"
    numeric = tmp_path / "numeric.sock"
    config, diagnostics = check_config(
        "global\n"
        f"    stats socket {owned} mode 660 level admin user {user} group {group}\n"
        f"    stats socket {numeric} uid {pwd.getpwnam(user).pw_uid} gid 0\n"
    )
    assert diagnostics == []
    assert config is not None
    listeners = listeners_from_config(config.global_)

    async def body(env: Lab) -> tuple[os.stat_result, os.stat_result, str]:
        return owned.stat(), numeric.stat(), await ask(owned, "show servers state nope\n")

    if os.geteuid() != 0:  # only root may give a socket group 0
        listeners = listeners[:1]
        numeric.touch()
    owned_stat, numeric_stat, answer = run(pki, tmp_path, body, listeners)
    assert (owned_stat.st_uid, owned_stat.st_gid) == (
        pwd.getpwnam(user).pw_uid,
        grp.getgrnam(group).gr_gid,
    )
    assert stat.S_IMODE(owned_stat.st_mode) == 0o660
    assert answer == "Can't find backend.\n\n"
    if os.geteuid() == 0:
        assert (numeric_stat.st_uid, numeric_stat.st_gid) == (pwd.getpwnam(user).pw_uid, 0)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("user no-such-user-here", "unknown user name 'no-such-user-here'."),
        ("group no-such-group-here", "unknown group name 'no-such-group-here'."),
        ("uid alice", "'uid' expects a numeric id, got 'alice'."),
        ("gid", "'gid' expects an argument."),
    ],
)
def test_stats_socket_owner_errors_name_the_line(option: str, message: str) -> None:
    _config, diagnostics = check_config(f"global\n    stats socket /run/x.sock {option}\n")
    assert diagnostics == [f"[ALERT] config : parsing [t.cfg:2] : 'stats socket' : {message}"]
