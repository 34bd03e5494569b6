"""Per keep-alive request counts: system calls, TLS records, transport writes, Python calls.

Wall-clock figures on a shared machine move by ±20 %; these counts do not. For each proxy
(`staplegate` in `mode http`, `staplegate-tcp`, `probe-http`, set up exactly as
`http_bench.py` sets them up, same certificate, same nginx backend, same wrk load) it does
two wrk runs and divides by the requests wrk counted:

1. `strace -c -f -p WORKER` for the system calls of the process serving the traffic
   (staplegate's worker, the probe's only process);
2. cProfile over the same process (`STAPLEGATE_PROFILE` for staplegate; `python -m cProfile`
   for the probe), for Python-level calls: Python functions, and all calls including the C
   functions Python calls, among them OpenSSL's `SSL_write` (one TLS record each: the
   answers are far below 16 KiB) and `SSL_read`. uvloop's methods (`transport.write`,
   `loop.time`) are invisible to cProfile; on loopback every `transport.write` of a small
   answer is one `write` system call, which strace counts.

strace and cProfile slow the proxy down; what is counted per request does not depend on
the speed (each of wrk's connections has one request in flight). Never quote a rate from
this script.

    .venv/bin/python bench/http_counts.py [--seconds 3] [--top N] \\
        [--proxies staplegate,staplegate-tcp,probe-http]

Needs: wrk, nginx, strace, taskset (and what `http_bench.py` needs).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import http_bench  # a sibling script, not a package

PROXIES = ("staplegate", "staplegate-tcp", "probe-http")


def wrk_requests(port: int, seconds: int, connections: int, cpu: int) -> int:
    """Run wrk; the number of requests it completed."""
    result = subprocess.run(
        ["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s",
         f"https://127.0.0.1:{port}/"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    match = re.search(r"(\d+) requests in", result.stdout)
    if match is None or "Non-2xx" in result.stdout:
        raise RuntimeError(f"wrk failed on port {port}:\n{result.stdout}")
    return int(match.group(1))


def serving_pid(name: str, pid: int) -> int:
    """The process that carries the traffic: staplegate's (only) worker, else `pid`."""
    if not name.startswith("staplegate"):
        return pid
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        workers = [p for p in http_bench.descendants(pid) if p != pid]
        if workers:  # taskset execs the proxy: its child is the worker
            return workers[-1]
        time.sleep(0.1)
    raise RuntimeError("no staplegate worker found")


def syscalls(pid: int, port: int, options: argparse.Namespace) -> tuple[int, dict[str, int]]:
    """(requests, calls by system call name) over one wrk run under `strace -c`."""
    out = options.tmp / f"strace-{pid}.txt"
    tracer = subprocess.Popen(
        ["strace", "-c", "-f", "-o", str(out), "-p", str(pid)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.5)  # attach (a bench script: nothing in the suite waits this way)
    try:
        requests = wrk_requests(port, options.seconds, options.connections, options.load_cpu)
    finally:
        tracer.send_signal(2)
        tracer.wait(30)
    calls: dict[str, int] = {}
    for line in out.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            count = int(parts[3])
            calls[parts[-1]] = count
    return requests, calls


def python_calls(stats_path: Path) -> dict[str, int]:
    """Calls per function label from a cProfile dump."""
    stats = pstats.Stats(str(stats_path))
    counts: dict[str, int] = {}
    for (file, line, function), (_cc, ncalls, *_rest) in stats.stats.items():  # type: ignore[attr-defined]
        label = function if file == "~" else f"{Path(file).name}:{line}({function})"
        counts[label] = counts.get(label, 0) + ncalls
    return counts


def summarise(counts: dict[str, int]) -> dict[str, int]:
    def matching(pattern: str) -> int:
        return sum(n for label, n in counts.items() if re.search(pattern, label))

    return {
        "Python functions called": sum(
            n for label, n in counts.items() if not label.startswith(("<", "{"))
        ),
        "calls, C functions included": sum(counts.values()),
        "SSL_write (TLS records out)": matching(r"SSL_write"),
        "SSL_read": matching(r"SSL_read"),
    }


@contextlib.contextmanager
def started(
    name: str,
    files: http_bench.Files,
    backend: int,
    options: argparse.Namespace,
    profile_dir: Path | None,
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = http_bench.free_port()
    command = http_bench.proxy_command(name, files, port, backend)
    env = os.environ.copy()
    if profile_dir is not None:
        if name == "probe-http":
            out = profile_dir / "probe.pstats"
            command = [command[0], "-m", "cProfile", "-o", str(out), *command[1:]]
        else:
            env["STAPLEGATE_PROFILE"] = str(profile_dir)
    with http_bench.running(command, options.proxy_cpu, env=env) as process:
        http_bench.wait_port(port)
        yield process, port


def count(
    name: str, files: http_bench.Files, backend: int, options: argparse.Namespace
) -> dict[str, float]:
    figures: dict[str, float] = {}
    with started(name, files, backend, options, None) as (process, port):
        wrk_requests(port, 1, options.connections, options.load_cpu)  # warm-up
        pid = serving_pid(name, process.pid)
        requests, calls = syscalls(pid, port, options)
    figures["system calls"] = sum(calls.values()) / requests
    for syscall in ("read", "write", "epoll_wait", "epoll_pwait"):
        if syscall in calls:
            figures[f"  {syscall}"] = calls[syscall] / requests
    profile_dir = options.tmp / f"prof-{name}"
    profile_dir.mkdir()
    with started(name, files, backend, options, profile_dir) as (process, port):
        total = wrk_requests(port, 1, options.connections, options.load_cpu)  # warm-up too
        total += wrk_requests(port, options.seconds, options.connections, options.load_cpu)
    dumps = list(profile_dir.glob("*.pstats"))
    if not dumps:
        raise RuntimeError(f"{name}: no profile written")
    counts = python_calls(max(dumps, key=lambda p: p.stat().st_size))
    for key, value in summarise(counts).items():
        figures[key] = value / total
    if options.top:
        ranked = sorted(counts.items(), key=lambda item: -item[1])[: options.top]
        for label, n in ranked:
            figures[f"  py {label}"] = n / total
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--proxy-cpu", type=int, default=1)
    parser.add_argument("--load-cpu", type=int, default=0)
    parser.add_argument("--top", type=int, default=0, help="also list the N most called")
    parser.add_argument("--proxies", default=",".join(PROXIES))
    options = parser.parse_args(argv)
    names = [n for n in options.proxies.split(",") if n]
    for tool in ("wrk", "nginx", "strace", "taskset"):
        if shutil.which(tool) is None:
            print(f"needs {tool} on PATH")
            return 2
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="http-counts-") as tmp, contextlib.ExitStack() as stack:
        options.tmp = Path(tmp)
        files = http_bench.make_files(options.tmp)
        backend = http_bench.free_port()
        conf = options.tmp / "backend.conf"
        conf.write_text(http_bench.BACKEND_CONF.format(tmp=options.tmp, port=backend))
        stack.enter_context(
            http_bench.running(["nginx", "-c", str(conf), "-p", tmp], options.load_cpu)
        )
        http_bench.wait_port(backend)
        for name in names:
            results[name] = count(name, files, backend, options)
            print(f"{name}: done", file=sys.stderr, flush=True)
    rows: list[str] = []
    for figures in results.values():
        rows.extend(key for key in figures if key not in rows)
    print("| per keep-alive request | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for row in rows:
        cells = [f"{results[n][row]:.2f}" if row in results[n] else "–" for n in names]
        print(f"| {row} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
