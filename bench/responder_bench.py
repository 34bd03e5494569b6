#!/usr/bin/env python3
"""Benchmark `staplegate responder` against `openssl ocsp -multi 2` on the same index.txt.

Both servers and the load client (wrk) run inside a throw-away network namespace that has
only `lo`, so `openssl ocsp -port` (which listens on every address) never touches the
host's interfaces. Needs root (ip netns) and Debian's `wrk` (`apt-get install -y wrk`).

For each signer key type (RSA-2048, P-256) it measures:
  - GET, cacheable (no nonce): the same request again and again, RFC 5019 style;
  - POST with a nonce: every answer must be signed afresh (wrk sends the same bytes, so the
    nonce repeats, but neither server caches nonce answers).
and prints responses/s, server CPU microseconds per response (utime+stime of the whole server
process tree from /proc), and the staplegate/openssl ratio of responses/s.

    sudo .venv/bin/python bench/responder_bench.py [--seconds 8] [--workers 2] [--connections 16]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from staplegate.testpki.ca import CertificateAuthority, KeyKind

OPENSSL_PORT = 8801
STAPLEGATE_PORT = 8802
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Result:
    server: str
    scenario: str
    responses_per_second: float
    errors: int
    cpu_us_per_response: float


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=120)


@contextlib.contextmanager
def namespace() -> Iterator[str]:
    name = f"sgbench{os.getpid()}"
    run("ip", "netns", "add", name)
    try:
        run("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        links = run("ip", "netns", "exec", name, "ip", "-o", "link").stdout
        names = [line.split(": ")[1] for line in links.splitlines() if line.strip()]
        assert names == ["lo"], links  # nothing but loopback in there
        yield name
    finally:
        run("ip", "netns", "del", name, check=False)


def tree_cpu_ticks(root: int) -> int:
    """utime+stime (+ reaped children's) of `root` and every live descendant."""
    parents: dict[int, int] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
        stats[int(entry)] = fields
    members = {root}
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in members and pid not in members:
                members.add(pid)
                changed = True
    total = 0
    for pid in members:
        row = stats.get(pid)
        if row:  # row[11..14] = utime stime cutime cstime (stat fields 14-17)
            total += sum(int(v) for v in row[11:15])
    return total


def wait_listening(ns: str, port: int, deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        out = run("ip", "netns", "exec", ns, "ss", "-ltnH", f"sport = :{port}", check=False).stdout
        if out.strip():
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} in {ns}")


def wrk(
    ns: str, url: str, *, seconds: int, connections: int, threads: int, script: Path | None
) -> tuple[float, int, int]:
    args = ["ip", "netns", "exec", ns, "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s"]
    if script is not None:
        args += ["-s", str(script)]
    out = run(*args, url).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors_match = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(errors_match.group(1)) if errors_match else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return rate, total, errors


def measure(
    ns: str, server_pid: int, name: str, scenario: str, url: str, args: argparse.Namespace,
    script: Path | None,
) -> Result:  # fmt: skip
    """One wrk run against a freshly started server (no warm-up: see below)."""
    before = tree_cpu_ticks(server_pid)
    rate, total, errors = wrk(
        ns, url, seconds=args.seconds, connections=args.connections, threads=args.threads,
        script=script,
    )  # fmt: skip
    cpu = (tree_cpu_ticks(server_pid) - before) / CLOCK_TICKS
    return Result(name, scenario, rate, errors, cpu * 1e6 / max(total, 1))


@contextlib.contextmanager
def serving(ns: str, command: list[str], port: int) -> Iterator[int]:
    """Run `command` inside the namespace until the block ends; yields its pid."""
    process = subprocess.Popen(
        ["ip", "netns", "exec", ns, *command],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_listening(ns, port)
        yield process.pid  # `ip netns exec` execs the command: same pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for pid in run("ip", "netns", "pids", ns, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 9)  # openssl -multi children that were spinning
        end = time.monotonic() + 10
        while run("ip", "netns", "pids", ns, check=False).stdout.strip():
            if time.monotonic() > end:
                break
            time.sleep(0.05)


def post_script(directory: Path, body: bytes) -> Path:
    """A wrk Lua script POSTing `body` (escaped byte by byte)."""
    escaped = "".join(f"\\{b:03d}" for b in body)
    script = directory / f"post-{len(body)}.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = "{escaped}"\n'
        'wrk.headers["Content-Type"] = "application/ocsp-request"\n'
    )
    return script


def requests_for(leaf: x509.Certificate, issuer: x509.Certificate) -> tuple[bytes, bytes]:
    plain = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()
    with_nonce = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(leaf, issuer, hashes.SHA1())
        .add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
        .build()
    )
    return (
        plain.public_bytes(serialization.Encoding.DER),
        with_nonce.public_bytes(serialization.Encoding.DER),
    )


def bench_key(
    kind: KeyKind, label: str, ns: str, work: Path, args: argparse.Namespace
) -> list[Result]:
    ca = CertificateAuthority.init(work / label, ocsp_url=None)
    signer = ca.ocsp_signer(key=kind)
    leaf = ca.issue("bench.test")
    plain, nonce = requests_for(leaf.certificate, leaf.issuer)
    script = post_script(work, nonce)
    common = [
        "-index", str(ca.index_path), "-CA", str(ca.ca_cert_path),
        "-rsigner", str(signer.cert_path), "-rkey", str(signer.key_path), "-nmin", "60",
    ]  # fmt: skip
    servers = {
        "openssl ocsp -multi 2": [
            "openssl", "ocsp", "-port", str(OPENSSL_PORT), "-multi", "2", *common,
        ],
        f"staplegate responder --workers {args.workers}": [
            sys.executable, "-m", "staplegate", "responder", "--port", str(STAPLEGATE_PORT),
            "--workers", str(args.workers), "--quiet", *common,
        ],
    }  # fmt: skip
    results = []
    # Each measurement gets a freshly started server: openssl 3.0's `ocsp -port -multi`
    # children spin at 100% CPU forever once a client closes a connection they were reading
    # (as wrk does when a run ends), so a second run against the same server gets nothing.
    for scenario, path, lua in (("GET cached", "get", None), ("POST nonce", "post", script)):
        for name, command in servers.items():
            port = OPENSSL_PORT if name.startswith("openssl") else STAPLEGATE_PORT
            base = f"http://127.0.0.1:{port}"
            url = base + "/"
            if path == "get":
                url += quote(base64.b64encode(plain).decode(), safe="")
            with serving(ns, command, port) as pid:
                results.append(measure(ns, pid, name, f"{label} {scenario}", url, args, lua))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="staplegate responder workers")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root for `ip netns`", file=sys.stderr)
        return 2
    for tool in ("wrk", "openssl", "ip", "ss"):
        if shutil.which(tool) is None:
            print(f"missing {tool} (apt-get install -y wrk iproute2 openssl)", file=sys.stderr)
            return 2
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="sg-bench-") as temp, namespace() as ns:
        work = Path(temp)
        results += bench_key(KeyKind.RSA2048, "RSA-2048", ns, work, args)
        results += bench_key(KeyKind.EC256, "P-256", ns, work, args)

    print(
        f"\nclient: wrk {args.threads} threads, {args.connections} connections, {args.seconds} s "
        "per run, fresh server per run; everything in a netns with only lo; "
        f"{os.cpu_count()} CPUs shared by client and server.\n"
        "connection reuse: staplegate keeps HTTP/1.1 connections alive; openssl ocsp answers "
        "HTTP/1.0 and closes after each response, so wrk reconnects for every request.\n"
        "signers: delegated OCSP signer certificates with the key type named in the scenario; "
        "both servers read the same index.txt, CA and signer files, with -nmin 60."
    )
    print(f"{'scenario':<20} {'server':<32} {'resp/s':>10} {'errors':>7} {'CPU us/resp':>12}")
    for r in results:
        print(f"{r.scenario:<20} {r.server:<32} {r.responses_per_second:>10.0f} {r.errors:>7} "
              f"{r.cpu_us_per_response:>12.1f}")  # fmt: skip
    print()
    targets = {"RSA-2048 GET cached": 3.0, "P-256 GET cached": 1.0,
               "RSA-2048 POST nonce": 0.5, "P-256 POST nonce": 0.5}  # fmt: skip
    for scenario, target in targets.items():
        pair = [r for r in results if r.scenario == scenario]
        theirs = next(r for r in pair if r.server.startswith("openssl"))
        ours = next(r for r in pair if not r.server.startswith("openssl"))
        ratio = ours.responses_per_second / max(theirs.responses_per_second, 1e-9)
        cpu_ratio = theirs.cpu_us_per_response / max(ours.cpu_us_per_response, 1e-9)
        verdict = "meets" if ratio >= target else "BELOW"
        print(f"{scenario:<20} ratio {ratio:5.2f}x resp/s (target >= {target}x: {verdict}); "
              f"openssl uses {cpu_ratio:5.2f}x our CPU per response")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
