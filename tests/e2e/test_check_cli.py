"""`staplegate -c [-V] -f FILE` as a user runs it: a subprocess, real files, real verdicts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from staplegate.testpki.ca import CertificateAuthority
from tests.ocsp_der import BIT_STRING, BOOLEAN, INTEGER, malformed_name_response

CONFIG = """\
global
    ocsp-update.mode {mode}
    crt-base {certs}

defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend www
    bind 127.0.0.1:8443 ssl crt-list {crt_list}
    default_backend webservers

backend webservers
    server web1 127.0.0.1:8080
"""


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "staplegate", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write_setup(
    tmp_path: Path, crt_list_lines: list[str], *, mode: str = "on"
) -> tuple[Path, Path]:
    crt_list = tmp_path / "crt-list.txt"
    crt_list.write_text("".join(line + "\n" for line in crt_list_lines), encoding="utf-8")
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        CONFIG.format(mode=mode, certs=tmp_path / "certs", crt_list=crt_list), encoding="utf-8"
    )
    return config, crt_list


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    (tmp_path / "certs").mkdir()
    return CertificateAuthority.init(tmp_path / "pki", ocsp_url="http://127.0.0.1:9")


def test_valid_configuration_with_verbose_report(tmp_path: Path, ca: CertificateAuthority) -> None:
    www = ca.issue("www.example.test", out_dir=tmp_path / "certs")
    config, _ = write_setup(tmp_path, ["www.example.test.pem [ocsp-update on] www.example.test"])
    result = run("-c", "-V", "-f", config)
    assert result.returncode == 0, result.stderr
    assert "Configuration file is valid" in result.stdout
    assert "www.example.test.pem" in result.stdout
    assert "OCSP URI:     http://127.0.0.1:9" in result.stdout
    # no intermediate in the bundle: the issuer comes from the .issuer sidecar
    assert f"(from {www.issuer_path})" in result.stdout
    assert "refreshed automatically" in result.stdout
    assert "staplegate extensions (global):" in result.stdout
    assert "  ocsp-update.crl-watch         no-ocsp-only (default)" in result.stdout
    assert "  ocsp-update.must-staple-wait  30s (default)" in result.stdout
    assert "  ocsp-update.shared-store      none (default)" in result.stdout
    assert "  ocsp-update.shared-store-password-file none (default)" in result.stdout


def test_verbose_report_names_every_responder_and_the_overrides(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    ca.issue(
        "two.example.test",
        out_dir=tmp_path / "certs",
        ocsp_url=["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"],
    )
    ca.issue("www.example.test", out_dir=tmp_path / "certs")
    config, _ = write_setup(
        tmp_path,
        [
            "two.example.test.pem two.example.test",
            "www.example.test.pem [ocsp-responder http://127.0.0.1:9/mirror] www.example.test",
        ],
    )
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace("global\n", "global\n    ocsp-update.revoked-hook 'logger revoked'\n"),
        encoding="utf-8",
    )
    result = run("-c", "-V", "-f", config)
    assert result.returncode == 0, result.stderr
    assert "OCSP URI:     http://127.0.0.1:9/a, then http://127.0.0.1:9/b" in result.stdout
    assert (
        "OCSP URI:     http://127.0.0.1:9/mirror (ocsp-responder override; the AIA says: "
        "http://127.0.0.1:9)"
    ) in result.stdout
    assert "  ocsp-update.revoked-hook      logger revoked\n" in result.stdout


def test_directory_of_cfg_files(tmp_path: Path, ca: CertificateAuthority) -> None:
    ca.issue("www.example.test", out_dir=tmp_path / "certs")
    config, _ = write_setup(tmp_path, ["www.example.test.pem"])
    directory = tmp_path / "conf.d"
    directory.mkdir()
    config.rename(directory / "10-main.cfg")
    result = run("-c", "-f", directory)
    assert result.returncode == 0, result.stderr


def test_missing_certificate_file(tmp_path: Path, ca: CertificateAuthority) -> None:
    config, crt_list = write_setup(tmp_path, ["# comment", "missing.pem [ocsp-update on]"])
    result = run("-c", "-f", config)
    assert result.returncode == 1
    assert f"[ALERT] config : parsing [{crt_list}:2] :" in result.stderr
    assert "missing.pem" in result.stderr
    assert "Fatal errors found in configuration." in result.stderr


def test_key_that_does_not_match(tmp_path: Path, ca: CertificateAuthority) -> None:
    www = ca.issue("www.example.test", out_dir=tmp_path / "certs")
    other = ca.issue("other.example.test", out_dir=tmp_path / "certs")
    leaf = www.certificate.public_bytes(serialization.Encoding.PEM)
    wrong_key = other.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    www.bundle_path.write_bytes(leaf + wrong_key)
    config, crt_list = write_setup(tmp_path, ["www.example.test.pem"])
    result = run("-c", "-f", config)
    assert result.returncode == 1
    assert f"parsing [{crt_list}:1]" in result.stderr
    assert "inconsistencies between private key and certificate loaded" in result.stderr


def test_no_ocsp_uri_under_ocsp_update_on_is_valid_with_a_notice(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    ca.issue("legacy.example.test", ocsp_url=None, out_dir=tmp_path / "certs")
    config, crt_list = write_setup(tmp_path, ["legacy.example.test.pem"], mode="on")
    result = run("-c", "-V", "-f", config)
    assert result.returncode == 0, result.stderr
    notices = [line for line in result.stderr.splitlines() if line.startswith("[NOTICE]")]
    assert len(notices) == 1
    assert f"parsing [{crt_list}:1]" in notices[0]
    assert "certificates without an OCSP URI are not updated" in notices[0]
    assert "none — certificates without an OCSP URI are not updated" in result.stdout


def test_ocsp_file_for_another_certificate_is_ignored_with_a_warning(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    www = ca.issue("www.example.test", out_dir=tmp_path / "certs")
    other = ca.issue("other.example.test", out_dir=tmp_path / "certs")
    Path(f"{www.bundle_path}.ocsp").write_bytes(ca.good_response(other))
    config, crt_list = write_setup(tmp_path, ["www.example.test.pem"])
    result = run("-c", "-V", "-f", config)
    assert result.returncode == 0, result.stderr
    assert f"[WARNING] config : parsing [{crt_list}:1] : Loading:" in result.stderr
    assert "Certificate ID does not match certificate and issuer" in result.stderr
    assert "Content will be ignored." in result.stderr


def test_matching_ocsp_file_is_loaded_and_verified(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    www = ca.issue("www.example.test", out_dir=tmp_path / "certs")
    Path(f"{www.bundle_path}.ocsp").write_bytes(ca.good_response(www))
    config, _ = write_setup(tmp_path, ["www.example.test.pem"])
    result = run("-c", "-V", "-f", config)
    assert result.returncode == 0, result.stderr
    assert "[WARNING]" not in result.stderr
    assert ".ocsp: good, verified" in result.stdout.replace("    ", " ").replace("  ", " ")


def test_version_and_missing_config() -> None:
    version = run("-v")
    assert version.returncode == 0
    assert version.stdout.startswith("staplegate version ")
    missing = run("-c")
    assert missing.returncode == 1
    assert "No configuration file specified" in missing.stderr


@pytest.mark.parametrize(
    "tag", [BOOLEAN, INTEGER, BIT_STRING], ids=["boolean", "integer", "bit-string"]
)
def test_ocsp_file_with_a_malformed_responder_name_is_ignored_with_a_warning(
    tmp_path: Path, ca: CertificateAuthority, tag: int
) -> None:
    """Issue 14, defect 2: these bytes crashed `-c` with a TypeError/ValueError traceback."""
    www = ca.issue("www.example.test", out_dir=tmp_path / "certs")
    bad = malformed_name_response(www.certificate, www.issuer, ca.private_key, tag=tag)
    Path(f"{www.bundle_path}.ocsp").write_bytes(bad)
    config, crt_list = write_setup(tmp_path, ["www.example.test.pem"])
    result = run("-c", "-V", "-f", config)
    assert "Traceback" not in result.stderr
    assert result.returncode == 0, result.stderr
    (warning,) = [line for line in result.stderr.splitlines() if "[WARNING]" in line]
    assert warning.startswith(f"[WARNING] config : parsing [{crt_list}:1] : Loading: ")
    assert "Unable to parse OCSP response" in warning
    assert warning.endswith("Content will be ignored.")


def test_conditional_blocks_pick_the_lines_checked(tmp_path: Path) -> None:
    """HAProxy's edge example wraps its QUIC listener in `.if feature(QUIC)`: staplegate,
    built without QUIC, skips the block as such an HAProxy does, and `-c` passes."""
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        "frontend fe\n    mode http\n    bind 127.0.0.1:18080\n"
        ".if feature(QUIC)\n    bind quic4@:443 ssl crt /missing.pem alpn h3\n.endif\n"
        ".if defined(NO_SUCH_VARIABLE_HERE)\n    unknown-keyword\n.else\n"
        "    http-request return status 200 content-type text/plain string ok\n.endif\n",
        encoding="utf-8",
    )
    result = run("-c", "-f", config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout


def test_default_path_config_finds_files_beside_the_configuration(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    """`default-path config` (the Kubernetes ingress controller's): relative certificate and
    crt-list paths start from the configuration's directory, whatever the working one."""
    ca.issue("www.example.test", out_dir=tmp_path / "certs")
    (tmp_path / "list.txt").write_text("www.example.test.pem www.example.test\n")
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        "global\n    default-path config\n    crt-base certs\n"
        "frontend fe\n    bind 127.0.0.1:18443 ssl crt-list list.txt\n"
        "    default_backend app\nbackend app\n    server a 127.0.0.1:9000\n",
        encoding="utf-8",
    )
    elsewhere = subprocess.run(
        [sys.executable, "-m", "staplegate", "-c", "-f", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",
    )
    assert elsewhere.returncode == 0, elsewhere.stdout + elsewhere.stderr
    config.write_text(config.read_text().replace("    default-path config\n", ""))
    without = subprocess.run(
        [sys.executable, "-m", "staplegate", "-c", "-f", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",
    )
    assert without.returncode != 0  # relative to / they are not there
