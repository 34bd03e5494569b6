"""The runtime API's limits on real Unix sockets: `stats maxconn`, `stats timeout`, the line
and payload caps, the level checked before a payload is read, and what an internal error
logs (its traceback, never the payload)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from staplegate.config.model import StatsLevel
from staplegate.config.parser.dispatch import parse_texts
from staplegate.config.semantic import build_config
from staplegate.runtime import transaction
from staplegate.runtime.grammar import MAX_LINE
from staplegate.runtime.server import Limits, Listener, limits_from_config
from staplegate.testpki.pytest_plugin import Pki

from .runtime_harness import WAIT, Lab, ask, lab, unix

pytestmark = pytest.mark.openssl

T = TypeVar("T")
#: How long a test waits to be sure nothing arrives (the server answers in milliseconds).
QUIET = 0.3


def run(
    pki: Pki,
    tmp_path: Path,
    body: Callable[[Lab], Coroutine[Any, Any, T]],
    **options: Any,
) -> T:
    async def main() -> T:
        async with lab(pki, tmp_path, **options) as env:
            return await body(env)

    return asyncio.run(main())


async def prompt_session(path: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """An interactive connection that holds a slot until closed."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(b"prompt\n")
    await writer.drain()
    async with asyncio.timeout(WAIT):
        assert await reader.readexactly(2) == b"> "
    return reader, writer


async def nothing_within(reader: asyncio.StreamReader, seconds: float = QUIET) -> bool:
    try:
        async with asyncio.timeout(seconds):
            await reader.read(1)
    except TimeoutError:
        return True
    return False


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    await writer.wait_closed()


def test_stats_maxconn_makes_extra_clients_wait_for_a_slot(pki: Pki, tmp_path: Path) -> None:
    """Over `stats maxconn` (all sockets together), a client is not accepted until a slot
    frees; then it is served. HAProxy stops accepting on a full CLI frontend the same way."""

    async def body(env: Lab) -> tuple[bool, str, bool, str]:
        first = await prompt_session(env.sockets[StatsLevel.USER])
        second = await prompt_session(env.sockets[StatsLevel.ADMIN])  # another socket, same pool
        reader, writer = await asyncio.open_unix_connection(str(env.sockets[StatsLevel.OPERATOR]))
        writer.write(b"show servers state nope\n")
        await writer.drain()
        waited = await nothing_within(reader)
        await close(first[1])
        async with asyncio.timeout(WAIT):
            served = (await reader.read()).decode()
        await close(writer)
        # a socket's own `maxconn` caps it below the global limit
        own = env.directory / "own.sock"
        held = await prompt_session(own)
        reader, writer = await asyncio.open_unix_connection(str(own))
        writer.write(b"show servers state nope\n")
        await writer.drain()
        own_waited = await nothing_within(reader)
        await close(held[1])
        async with asyncio.timeout(WAIT):
            own_served = (await reader.read()).decode()
        await close(writer)
        await close(second[1])
        return waited, served, own_waited, own_served

    extra = (Listener(unix(tmp_path / "own.sock"), StatsLevel.USER, maxconn=1),)
    waited, served, own_waited, own_served = run(
        pki, tmp_path, body, limits=Limits(maxconn=2), extra=extra
    )
    assert waited, "a third client was served while two held the two slots"
    assert served == "Can't find backend.\n\n"
    assert own_waited, "a socket with 'maxconn 1' served a second client"
    assert own_served == "Can't find backend.\n\n"


def test_stats_timeout_from_the_config_closes_silent_clients(pki: Pki, tmp_path: Path) -> None:
    """`stats timeout 300ms` closes a client that sends nothing, or stops mid-line, or idles
    at the prompt; a busy client is not cut."""
    parsed = parse_texts([("t.cfg", "global\n    stats timeout 300ms\n")], env={})
    config, _ = build_config(parsed)
    assert config is not None
    limits = limits_from_config(config.global_)
    assert limits.timeout == pytest.approx(0.3)

    async def body(env: Lab) -> tuple[bytes, bytes, bytes, float]:
        path = env.sockets[StatsLevel.USER]
        loop = asyncio.get_running_loop()
        started = loop.time()
        silent_reader, silent_writer = await asyncio.open_unix_connection(str(path))
        async with asyncio.timeout(WAIT):
            silent = await silent_reader.read()
        elapsed = loop.time() - started
        await close(silent_writer)
        partial_reader, partial_writer = await asyncio.open_unix_connection(str(path))
        partial_writer.write(b"show inf")
        await partial_writer.drain()
        async with asyncio.timeout(WAIT):
            partial = await partial_reader.read()
        await close(partial_writer)
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"prompt\n")
        for _ in range(4):  # 4 x 0.15 s of activity: longer than the timeout, never silent
            await asyncio.sleep(0.15)  # a slow client's pause: the behaviour under test
            writer.write(b"show servers state nope\n")
        await writer.drain()
        async with asyncio.timeout(WAIT):
            prompt = await reader.read()  # then silence: closed
        await close(writer)
        return silent, partial, prompt, elapsed

    silent, partial, prompt, elapsed = run(pki, tmp_path, body, limits=limits)
    assert silent == b""
    assert partial == b""
    assert 0.25 < elapsed < 5.0
    assert prompt.count(b"Can't find backend.") == 4


def test_a_client_that_stops_reading_loses_its_slot(pki: Pki, tmp_path: Path) -> None:
    """With one slot, a client that asks for answers and never reads them is closed after
    `stats timeout` of blocked writing, and the next client is served."""

    async def body(env: Lab) -> tuple[str, float]:
        path = env.sockets[StatsLevel.USER]
        loop = asyncio.get_running_loop()
        _greedy_reader, greedy = await asyncio.open_unix_connection(str(path))
        greedy.write(b"prompt\n" + b"show stat\n" * 2000)  # megabytes of answers, unread
        await greedy.drain()
        started = loop.time()
        answer = await ask(path, "show servers state nope\n")
        elapsed = loop.time() - started
        greedy.close()
        return answer, elapsed

    answer, elapsed = run(pki, tmp_path, body, limits=Limits(maxconn=1, timeout=0.3))
    assert answer == "Can't find backend.\n\n"
    assert elapsed < WAIT


def test_line_cap_is_16_kib(pki: Pki, tmp_path: Path) -> None:
    async def body(env: Lab) -> tuple[str, str]:
        path = env.sockets[StatsLevel.USER]
        head = b"show servers state "
        fits = await ask(path, head + b"x" * (MAX_LINE - len(head)) + b"\n")
        over = await ask(path, head + b"x" * (MAX_LINE - len(head) + 1) + b"\n")
        return fits, over

    fits, over = run(pki, tmp_path, body)
    assert fits == "Can't find backend.\n\n"
    assert over.startswith("Command line too long: the runtime API accepts at most 16384 bytes")


def test_payload_cap_is_1_mib_and_a_real_bundle_fits(pki: Pki, tmp_path: Path) -> None:
    async def body(env: Lab) -> tuple[str, str]:
        path = env.sockets[StatsLevel.ADMIN]
        name = env.name("www")
        bundle = Path(name).read_bytes()
        fits = await ask(path, f"set ssl cert {name} <<\n".encode() + bundle + b"\n")
        await ask(path, f"abort ssl cert {name}\n")
        filler = b"#" * 63 + b"\n"
        over = await ask(
            path,
            f"set ssl cert {name} <<\n".encode() + filler * (1024 * 1024 // 64 + 1) + b"\n",
        )
        return fits, over

    fits, over = run(pki, tmp_path, body)
    assert fits.startswith("Transaction created for certificate ")
    assert over.startswith("Command payload too long: the runtime API accepts at most 1048576")


def test_level_is_checked_before_a_payload_is_read(pki: Pki, tmp_path: Path) -> None:
    """A `<<` line the socket may not send is answered at once and the connection closed:
    the client has not sent a byte of payload, and none is ever read."""

    async def refused(path: Path, line: bytes) -> str:
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(line)  # the payload mark only: no payload, no empty line, no EOF
        await writer.drain()
        async with asyncio.timeout(WAIT):
            answer = await reader.read()  # the server answers and closes by itself
        await close(writer)
        return answer.decode()

    async def body(env: Lab) -> dict[str, str]:
        user, operator = env.sockets[StatsLevel.USER], env.sockets[StatsLevel.OPERATOR]
        return {
            "cert": await refused(user, b"set ssl cert /x.pem <<\n"),
            "ocsp": await refused(operator, b"set ssl ocsp-response <<\n"),
            "first runs": await refused(user, b"show servers state nope; set ssl cert /x <<\n"),
            "no payload": await refused(user, b"show info <<\n"),
            "unknown": await refused(user, b"frobnicate <<\n"),
            "bare": await refused(user, b"<<\n"),
        }

    answers = run(pki, tmp_path, body)
    assert answers["cert"] == "Permission denied\n\n"
    assert answers["ocsp"] == "Permission denied\n\n"
    assert answers["first runs"] == "Can't find backend.\n\nPermission denied\n\n"
    assert answers["no payload"] == "'show info' takes no payload; the payload was not read.\n\n"
    assert answers["unknown"].startswith("Unknown command: 'frobnicate'")
    assert answers["bare"] == "A payload ('<<') needs a command before it.\n\n"


def test_internal_error_logs_its_traceback_but_never_the_payload(
    pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A `set ssl cert` whose key payload hits a bug: one ERROR event with the traceback,
    no byte of the key in it; the client gets a short answer and the socket keeps working."""
    key_pem = pki.issue("secret.example.test").bundle_path.read_text()
    assert "PRIVATE KEY" in key_pem
    key_lines = [line for line in key_pem.splitlines() if len(line) >= 40]

    def quoting_parser_bug(data: bytes) -> object:
        # a parser failure that quotes its input, as some library errors do
        raise ValueError(f"cannot parse {data[:400]!r}")

    monkeypatch.setattr(transaction, "parse_pem", quoting_parser_bug)

    async def body(env: Lab) -> tuple[str, str]:
        path = env.sockets[StatsLevel.ADMIN]
        name = env.name("www")
        failed = await ask(path, f"set ssl cert {name}.key <<\n{key_pem}\n")
        after = await ask(path, "show servers state nope\n")
        return failed, after

    caplog.set_level(logging.DEBUG, logger="staplegate")
    failed, after = run(pki, tmp_path, body)
    assert failed == "Internal error while running the command: ValueError\n\n"
    assert after == "Can't find backend.\n\n"
    records = [r for r in caplog.records if r.name == "staplegate.runtime"]
    assert len(records) == 1
    (record,) = records
    assert record.levelno == logging.ERROR
    text = logging.Formatter().format(record)  # message plus anything attached
    assert "set ssl cert" in text
    assert "Traceback (most recent call last):" in text
    assert "quoting_parser_bug" in text
    assert "ValueError" in text
    for line in key_lines:  # no 16-character piece of any line of the PEM
        for start in range(0, len(line) - 16, 8):
            assert line[start : start + 16] not in text
    assert "PRIVATE KEY" not in text
