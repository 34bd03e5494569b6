"""Where a keep-alive request's CPU goes, per shared object, for fronts or source trees
measured interleaved: `perf record` on the serving process, samples per request by DSO.

`http_bench.py` times whole proxies; on a shared machine a round moves by ±20 %, and a
front that other work starves of its CPU shows a higher cost per request. This samples only
the process that carries the traffic (staplegate's worker, the probe), so its figures are
CPU it spent, split into the kernel, libpython (the interpreter: our Python), OpenSSL (in
cryptography's `_rust` module), llhttp (`parser`), uvloop (`loop`) and libc; the fronts take
turns within each round, and the report gives the medians. Each front is given as
`LABEL=PROXY:TREE`, PROXY one of `http_bench.py`'s names and TREE a source tree whose `src`
goes on PYTHONPATH (`git archive REV src | tar -x -C DIR` makes one):

    .venv/bin/python bench/http_perf_ab.py --rounds 3 before=staplegate:/tmp/tree-main \\
        after=staplegate:. probe=probe-http:. tcp=staplegate-tcp:.

Needs: perf (linux-perf), wrk, nginx, taskset.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import http_bench  # sibling scripts, not a package
import http_counts

SAMPLE_HZ = 2000
SHOWN = {
    "[kernel.kallsyms]": "kernel",
    "libpython3.11.so.1.0": "libpython",
    "_rust.abi3.so": "OpenSSL",
    "parser.cpython-311-x86_64-linux-gnu.so": "llhttp",
    "loop.cpython-311-x86_64-linux-gnu.so": "uvloop",
    "libc.so.6": "libc",
}


def by_dso(report: str, requests: int) -> dict[str, float]:
    """µs of CPU per request for each shared object of a `perf report --sort dso -n`."""
    found: dict[str, float] = {}
    for line in report.splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith("#") and parts[0].endswith("%"):
            name = SHOWN.get(parts[2], "other")
            found[name] = found.get(name, 0.0) + int(parts[1]) * 1e6 / SAMPLE_HZ / requests
    found["total"] = sum(found.values())
    return found


def one_run(
    label: str, proxy: str, tree: Path, files: http_bench.Files, backend: int,
    options: argparse.Namespace, out: Path,
) -> dict[str, float]:  # fmt: skip
    os.environ["PYTHONPATH"] = str(tree / "src")
    with http_counts.started(proxy, files, backend, options, None) as (process, port):
        http_counts.wrk_requests(port, 1, options.connections, options.load_cpu)  # warm-up
        pid = http_counts.serving_pid(proxy, process.pid)
        recorder = subprocess.Popen(
            ["perf", "record", "-F", str(SAMPLE_HZ), "-o", str(out), "-p", str(pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.5)  # attach (a bench script: nothing in the suite waits this way)
        requests = http_counts.wrk_requests(
            port, options.seconds, options.connections, options.load_cpu
        )
        recorder.send_signal(2)
        recorder.wait(60)
    report = subprocess.run(
        ["perf", "report", "-i", str(out), "--sort", "dso", "--stdio", "-n"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    figures = by_dso(report, requests)
    figures["req/s"] = requests / options.seconds
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("fronts", nargs="+", help="LABEL=PROXY:TREE")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--proxy-cpu", type=int, default=1)
    parser.add_argument("--load-cpu", type=int, default=0)
    options = parser.parse_args(argv)
    fronts = []
    for spec in options.fronts:
        label, _, rest = spec.partition("=")
        proxy, _, tree = rest.partition(":")
        if proxy not in http_bench.VARIANTS or not tree:
            parser.error(f"{spec}: want LABEL=PROXY:TREE, PROXY from {http_bench.VARIANTS}")
        fronts.append((label, proxy, Path(tree).resolve()))
    for tool in ("perf", "wrk", "nginx", "taskset"):
        if shutil.which(tool) is None:
            print(f"needs {tool} on PATH")
            return 2
    results: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in fronts}
    columns = ["total", *SHOWN.values(), "other"]
    with tempfile.TemporaryDirectory(prefix="http-perf-") as name:
        tmp = Path(name)
        files = http_bench.make_files(tmp)
        backend = http_bench.free_port()
        conf = tmp / "backend.conf"
        conf.write_text(http_bench.BACKEND_CONF.format(tmp=tmp, port=backend))
        with http_bench.running(["nginx", "-c", str(conf), "-p", name], options.load_cpu):
            http_bench.wait_port(backend)
            for round_number in range(1, options.rounds + 1):
                for label, proxy, tree in fronts:
                    out = tmp / f"{label}-{round_number}.data"
                    figures = one_run(label, proxy, tree, files, backend, options, out)
                    results[label].append(figures)
                    print(
                        f"round {round_number} {label:<10} {figures['req/s']:>8,.0f} req/s, "
                        + ", ".join(f"{c} {figures.get(c, 0.0):.1f}" for c in columns)
                        + " µs per request",
                        flush=True,
                    )
    print("\n| µs of CPU per request (median) | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for label, runs in results.items():
        cells = [f"{statistics.median(r.get(c, 0.0) for r in runs):.1f}" for c in columns]
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
