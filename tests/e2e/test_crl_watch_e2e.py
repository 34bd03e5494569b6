"""The CRL watch in a running staplegate: the real test CA (`ca issue`, `ca revoke`, `ca crl`
run as commands), its responder serving /crl on 127.0.0.1, the runtime API through `ctl`.

Refreshes come from the CRLs' own short nextUpdate (`ca crl --seconds 8`); every wait polls
the log with a deadline.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from staplegate.testpki.pytest_plugin import Pki
from staplegate.updater.crl_watch import state_file_name

from .harness import free_port, http_backend, poll, staplegate

pytestmark = pytest.mark.slow

#: nextUpdate of the test CRLs: the watch refreshes within this many seconds...
CRL_SECONDS = 8
#: ...unless a loaded machine fetched a CRL already past its nextUpdate: then the watch asks
#: again 60 s later (a late CA), so a wait allows for one such retry.
LATE_REFRESH_WAIT_S = 90.0

CONFIG = """\
global
    log stdout format raw local0 info
    stats socket {user} mode 600 level user
{extra}
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend www
    bind 127.0.0.1:{port} ssl crt {crt} crt {other}
    default_backend web

backend web
    server web1 127.0.0.1:{backend}
"""


def _cli(*args: str | Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "staplegate", *map(str, args)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def _crl_watch(sock: Path) -> list[dict[str, str]]:
    rows = json.loads(_cli("ctl", "-S", sock, "--json", "show ssl crl-watch"))
    assert isinstance(rows, list)
    return rows


def _until_file_says(path: Path, needle: bytes, timeout: float = 20.0) -> None:
    """Poll until `path` holds `needle` (the watch writes its state off the loop)."""
    poll(
        lambda: True if needle in path.read_bytes() else None,
        timeout=timeout,
        failure=lambda: f"{path} never held {needle!r}",
    )


def _hook(tmp_path: Path) -> tuple[str, Path]:
    """A revoked-hook command that appends its STAPLEGATE_* environment to a JSON-lines file."""
    out = tmp_path / "hook-runs.jsonl"
    script = tmp_path / "hook.py"
    script.write_text(
        "import json, os\n"
        f"with open({str(out)!r}, 'a') as f:\n"
        "    f.write(json.dumps({k: v for k, v in os.environ.items()"
        " if k.startswith('STAPLEGATE_')}) + '\\n')\n",
        encoding="utf-8",
    )
    return f'    ocsp-update.revoked-hook "{sys.executable} {script}"\n', out


def test_good_then_revoked_on_the_next_refresh_then_known_at_restart(
    tmp_path: Path, pki: Pki
) -> None:
    crl_url = f"{pki.responder.url}/crl"
    hook_line, hook_runs = _hook(tmp_path)
    name = "crl-only.example.test"
    _cli("ca", "issue", pki.directory, name, "--no-ocsp-url", "--crl-url", crl_url)
    bundle = pki.directory / "issued" / f"{name}.pem"
    # has an OCSP URL too: not watched by default (no-ocsp-only)
    both = pki.issue("both.example.test", crl_url=crl_url).bundle_path
    _cli("ca", "crl", pki.directory, "--seconds", str(CRL_SECONDS))
    sock = tmp_path / "user.sock"
    state = tmp_path / "state"
    with http_backend() as backend:
        config = tmp_path / "haproxy.cfg"
        config.write_text(
            CONFIG.format(
                user=sock,
                port=free_port(),
                crt=bundle,
                other=both,
                backend=backend,
                extra=hook_line,
            ),
            encoding="utf-8",
        )
        with staplegate(config, state) as proc:
            proc.wait_for(rf'<CRL-UPDATE> {crl_url} ok "1 certificate\(s\), 0 revoked" 0 1')
            proc.wait_for("runtime API listening")
            (row,) = _crl_watch(sock)
            assert (row["Path"], row["CRL URL"], row["Status"]) == (str(bundle), crl_url, "good")
            assert (state / state_file_name(crl_url)).exists()

            _cli("ca", "revoke", pki.directory, name, "--reason", "keyCompromise")
            _cli("ca", "crl", pki.directory, "--seconds", str(CRL_SECONDS))
            proc.wait_for(
                rf"certificate {bundle} is REVOKED by its CRL {crl_url} \(reason keyCompromise",
                timeout=LATE_REFRESH_WAIT_S,
            )
            (row,) = _crl_watch(sock)
            assert (row["Status"], row["Reason"]) == ("revoked", "keyCompromise")
            assert row["Revocation Time"] != "-"

            assert proc.output.count("is REVOKED by its CRL") == 1  # alerted once
            _until_file_says(state / state_file_name(crl_url), b'"revoked"')
            # the revoked hook ran once, with the certificate in its environment
            proc.wait_for(rf"revoked-hook for {bundle} \(revoked\) done in")
            (run,) = [json.loads(line) for line in hook_runs.read_text().splitlines()]
            assert run["STAPLEGATE_EVENT"] == "revoked"
            assert run["STAPLEGATE_CERT_PATH"] == str(bundle)
            assert run["STAPLEGATE_CERT_NAMES"] == name
            assert run["STAPLEGATE_REVOCATION_SOURCE"] == "crl"
            assert run["STAPLEGATE_REVOCATION_REASON"] == "keyCompromise"
            assert run["STAPLEGATE_REVOCATION_TIME"].startswith("20")
        # a restart knows the verdict before any fetch: the responder is stopped (its
        # socket stays open, so the fetch hangs; a refused fetch is tests/integration's)
        pki.responder.stop()
        with staplegate(config, state) as proc:
            proc.wait_for("runtime API listening")
            (row,) = _crl_watch(sock)
            assert row["Status"] == "revoked"
            assert row["Successes"] == "0"
        assert len(hook_runs.read_text().splitlines()) == 1  # not run again at the restart


@pytest.mark.parametrize("mode", ["off", "on"])
def test_crl_watch_off_watches_nothing_and_on_watches_every_distribution_point(
    tmp_path: Path, pki: Pki, mode: str
) -> None:
    crl_url = f"{pki.responder.url}/crl"
    name = "unwatched.example.test"
    _cli("ca", "issue", pki.directory, name, "--no-ocsp-url", "--crl-url", crl_url)
    both = pki.issue("both.example.test", crl_url=crl_url).bundle_path
    _cli("ca", "crl", pki.directory)
    sock = tmp_path / "user.sock"
    with http_backend() as backend:
        config = tmp_path / "haproxy.cfg"
        config.write_text(
            CONFIG.format(
                user=sock,
                port=free_port(),
                crt=pki.directory / "issued" / f"{name}.pem",
                other=both,
                backend=backend,
                extra=f"    ocsp-update.crl-watch {mode}\n",
            ),
            encoding="utf-8",
        )
        with staplegate(config, tmp_path / "state") as proc:
            if mode == "on":
                proc.wait_for(rf'<CRL-UPDATE> {crl_url} ok "2 certificate\(s\), 0 revoked"')
            proc.wait_for("runtime API listening")
            rows = _crl_watch(sock)
            if mode == "off":
                assert rows == []
                assert "<CRL-UPDATE>" not in proc.output
            else:
                assert [r["Path"] for r in rows] == [
                    str(pki.directory / "issued" / f"{name}.pem"),
                    str(both),
                ]
                assert {r["Status"] for r in rows} == {"good"}
                # a reload applies the keyword: off stops watching
                config.write_text(
                    config.read_text(encoding="utf-8").replace("crl-watch on", "crl-watch off"),
                    encoding="utf-8",
                )
                proc.process.send_signal(signal.SIGUSR2)
                proc.wait_for("reload: generation 2 serving", timeout=30)
                assert _crl_watch(sock) == []
    crl_fetches = [r for r in pki.responder.requests if r.path == "/crl"]
    assert len(crl_fetches) == (0 if mode == "off" else 1)  # one fetch for both certificates


def test_update_ssl_crl_learns_a_revocation_at_once(tmp_path: Path, pki: Pki) -> None:
    """`update ssl crl` (operator level) fetches now instead of at the CRL's nextUpdate."""
    crl_url = f"{pki.responder.url}/crl"
    name = "crl-only.example.test"
    _cli("ca", "issue", pki.directory, name, "--no-ocsp-url", "--crl-url", crl_url)
    bundle = pki.directory / "issued" / f"{name}.pem"
    both = pki.issue("both.example.test", crl_url=crl_url).bundle_path
    _cli("ca", "crl", pki.directory, "--days", "1")
    sock = tmp_path / "operator.sock"
    with http_backend() as backend:
        config = tmp_path / "haproxy.cfg"
        text = CONFIG.format(
            user=sock, port=free_port(), crt=bundle, other=both, backend=backend, extra=""
        ).replace("level user", "level operator")
        config.write_text(text, encoding="utf-8")
        with staplegate(config, tmp_path / "state") as proc:
            proc.wait_for(rf'<CRL-UPDATE> {crl_url} ok "1 certificate\(s\), 0 revoked" 0 1')
            proc.wait_for("runtime API listening")
            _cli("ca", "revoke", pki.directory, name, "--reason", "keyCompromise")
            _cli("ca", "crl", pki.directory, "--days", "1")
            answer = _cli("ctl", "-S", sock, "update", "ssl", "crl", bundle)
            assert answer == f"{crl_url}: 1 certificate(s), 1 revoked (2 successes, 0 failures)\n"
            (row,) = _crl_watch(sock)
            assert row["Status"] == "revoked"
            proc.wait_for(rf"certificate {bundle} is REVOKED by its CRL")
