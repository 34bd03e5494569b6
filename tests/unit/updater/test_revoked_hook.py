"""RevokedHook with real /bin/sh commands: the environment, once per transition, cleared,
persisted across restarts, bounded run time, failures logged and never raised."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from pathlib import Path

import pytest
from cryptography import x509

from staplegate.testpki.pytest_plugin import Pki
from staplegate.updater.revoked_hook import STATE_FILE, Revocation, RevokedHook

WHEN = dt.datetime(2026, 12, 1, 8, 30, tzinfo=dt.UTC)


def recorder(tmp_path: Path) -> tuple[str, Path]:
    """A command appending its STAPLEGATE_* environment as one JSON line per run."""
    out = tmp_path / "hook.jsonl"
    script = tmp_path / "hook.py"
    script.write_text(
        "import json, os\n"
        f"with open({str(out)!r}, 'a') as f:\n"
        "    f.write(json.dumps({k: v for k, v in os.environ.items()"
        " if k.startswith('STAPLEGATE_')}) + '\\n')\n"
        "print('notified')\n",
        encoding="utf-8",
    )
    return f"python3 {script}", out


def runs(out: Path) -> list[dict[str, str]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def revocation(path: str, certificate: x509.Certificate, source: str = "ocsp") -> Revocation:
    return Revocation(path, certificate, "keyCompromise", WHEN, source)


def drive(hook: RevokedHook, *calls: object) -> None:
    """Run the hook's calls on a loop and wait for its commands."""

    async def scenario() -> None:
        for call in calls:
            assert callable(call)
            call()
        await hook.close()

    asyncio.run(scenario())


def test_a_revocation_runs_the_command_once_with_the_certificate_in_its_environment(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="staplegate.ocsp")
    leaf = pki.issue("www.example.test")
    command, out = recorder(tmp_path)
    hook = RevokedHook(command, state_dir=tmp_path)
    event = revocation("/etc/certs/www.pem", leaf.certificate)
    drive(hook, lambda: hook.revoked(event), lambda: hook.revoked(event))
    assert runs(out) == [
        {
            "STAPLEGATE_EVENT": "revoked",
            "STAPLEGATE_CERT_PATH": "/etc/certs/www.pem",
            "STAPLEGATE_CERT_SERIAL": f"{leaf.certificate.serial_number:X}",
            "STAPLEGATE_CERT_NAMES": "www.example.test",
            "STAPLEGATE_REVOCATION_REASON": "keyCompromise",
            "STAPLEGATE_REVOCATION_TIME": "2026-12-01T08:30:00+00:00",
            "STAPLEGATE_REVOCATION_SOURCE": "ocsp",
        }
    ]
    assert any(
        "done in" in r.getMessage() and '"notified"' in r.getMessage() for r in caplog.records
    )
    assert (tmp_path / STATE_FILE).stat().st_mode & 0o777 == 0o600


def test_what_was_announced_survives_a_restart(tmp_path: Path, pki: Pki) -> None:
    leaf = pki.issue("www.example.test")
    command, out = recorder(tmp_path)
    first = RevokedHook(command, state_dir=tmp_path)
    drive(first, lambda: first.revoked(revocation("/etc/certs/www.pem", leaf.certificate)))
    second = RevokedHook(command, state_dir=tmp_path)
    drive(
        second,
        lambda: second.configured({"/etc/certs/www.pem": leaf.certificate}),
        lambda: second.revoked(revocation("/etc/certs/www.pem", leaf.certificate, "crl")),
    )
    assert [r["STAPLEGATE_EVENT"] for r in runs(out)] == ["revoked"]


def test_a_replaced_certificate_clears_the_revocation_once(tmp_path: Path, pki: Pki) -> None:
    old = pki.issue("www.example.test")
    new = pki.issue("www2.example.test")
    command, out = recorder(tmp_path)
    hook = RevokedHook(command, state_dir=tmp_path)
    drive(
        hook,
        lambda: hook.revoked(revocation("/etc/certs/www.pem", old.certificate, "crl")),
        lambda: hook.configured({"/etc/certs/www.pem": new.certificate}),
        lambda: hook.configured({"/etc/certs/www.pem": new.certificate}),
    )
    revoked, cleared = runs(out)
    assert revoked["STAPLEGATE_EVENT"] == "revoked"
    assert cleared["STAPLEGATE_EVENT"] == "cleared"
    assert cleared["STAPLEGATE_CERT_SERIAL"] == f"{new.certificate.serial_number:X}"
    assert cleared["STAPLEGATE_REVOKED_SERIAL"] == f"{old.certificate.serial_number:X}"
    assert cleared["STAPLEGATE_REVOCATION_SOURCE"] == "crl"


def test_a_hanging_command_is_killed_at_its_bound(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    leaf = pki.issue("www.example.test")
    hook = RevokedHook("echo starting; sleep 60", state_dir=None, timeout=0.5)
    loop_time: list[float] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        hook.revoked(revocation("/etc/certs/www.pem", leaf.certificate))
        await hook.close()
        loop_time.append(loop.time() - started)

    asyncio.run(scenario())
    assert loop_time[0] < 5
    assert hook.failures == 1
    (line,) = [r.getMessage() for r in caplog.records if "revoked-hook" in r.getMessage()]
    assert 'killed after 0.5 s; output: "starting"' in line


def test_a_failing_command_is_logged_and_never_raises(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    leaf = pki.issue("www.example.test")
    hook = RevokedHook("echo 'no route to pager' >&2; exit 3", state_dir=tmp_path)
    drive(hook, lambda: hook.revoked(revocation("/etc/certs/www.pem", leaf.certificate)))
    assert hook.failures == 1
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(messages) == 1
    assert "failed with exit status 3" in messages[0]
    assert '"no route to pager"' in messages[0]


def test_output_is_bounded_and_kept_on_one_line(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="staplegate.ocsp")
    leaf = pki.issue("www.example.test")
    hook = RevokedHook("printf 'a\\nb\\n'; head -c 100000 /dev/zero | tr '\\0' x", state_dir=None)
    drive(hook, lambda: hook.revoked(revocation("/etc/certs/www.pem", leaf.certificate)))
    (message,) = [r.getMessage() for r in caplog.records if "revoked-hook" in r.getMessage()]
    assert "\n" not in message
    assert len(message) < 3000
    assert 'output: "a\\nb\\nxxx' in message


@pytest.mark.parametrize("content", [b"not json", b"[1, 2]", b'{"/x": {"serial": 5}}'])
def test_a_damaged_state_file_is_ignored(tmp_path: Path, pki: Pki, content: bytes) -> None:
    leaf = pki.issue("www.example.test")
    (tmp_path / STATE_FILE).write_bytes(content)
    command, out = recorder(tmp_path)
    hook = RevokedHook(command, state_dir=tmp_path)
    drive(hook, lambda: hook.revoked(revocation("/x", leaf.certificate)))
    assert len(runs(out)) == 1
