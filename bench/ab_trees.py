"""Two (or more) staplegate source trees side by side: which one costs less per operation?

A whole `tls_bench.py` run moves by up to ±8 % between runs on a shared VM, which hides a
change worth 2-5 %. This starts every tree at once (each a pinned 1-worker staplegate on
CPU 0, from that tree's `src/` through PYTHONPATH), then alternates short load bursts
between them for many rounds, so slow and fast stretches of the machine fall on all of them
alike. It prints each round and the medians and minima of proxy CPU per operation.

    git archive OLD src | tar -x -C /tmp/old      # a tree: a directory holding src/staplegate
    .venv/bin/python bench/ab_trees.py --test resumed --cert rsa --rounds 8 /tmp/old .

A tree `.` is this checkout; `probe-membio` (bench/design_probe.py) can be given as a tree
too. Same machinery and load as tls_bench.py (wrk / hsbench on CPU 1, nginx backend); takes
/tmp/bench.lock itself. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tls_bench as tb  # the sibling script, importable once its directory is on the path


def _start(tree: str, root: Path, cert: tb.CertSet, backend: int) -> tb.Server:
    directory = root / f"tree-{abs(hash(tree))}"
    if tree in tb.PROXIES and tree.startswith("probe"):
        probe: tb.Server = tb.PROXIES[tree](
            directory, tb.free_port(), "0", cert=cert, backend=backend, workers=1
        )
        probe.start()
        return probe
    source = (Path(tree) / "src").resolve()
    if not (source / "staplegate").is_dir():
        raise SystemExit(f"{tree}: no src/staplegate in it")
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(source)
    try:
        proxy: tb.Server = tb.Staplegate(
            directory, tb.free_port(), "0", cert=cert, backend=backend, workers=1
        )
        proxy.start()
    finally:
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous
    return proxy


def _burst(test: str, proxy: tb.Server, seconds: float, hsbench: Path) -> float:
    """Proxy CPU (µs) per operation over one load burst."""
    pids = proxy.pids
    before = tb.cpu_seconds(pids)
    started = time.monotonic()
    command = tb.pinned("1", tb.load_command(test, proxy.port, seconds, 1, hsbench, 4))
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = min(time.monotonic() - started, seconds)
    cpu = tb.cpu_seconds(pids) - before
    if test == "full":
        rate = float(json.loads(result.stdout.strip().splitlines()[-1])["per_sec"])
    else:
        rate, _, _ = tb.parse_wrk(result.stdout + result.stderr, test)
    return cpu / (rate * elapsed) * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("trees", nargs="+", help="directories holding src/staplegate, or .")
    parser.add_argument("--test", choices=("full", "resumed", "keepalive", "bulk"))
    parser.add_argument("--cert", choices=("rsa", "ecdsa"), default="rsa")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    test = args.test or "resumed"
    with tb.bench_lock():
        root = Path(tempfile.mkdtemp(prefix="ab-trees-"))
        try:
            hsbench = tb.build_hsbench(root)
        except tb.HsbenchBuildError as error:
            print(error, file=sys.stderr)
            return 2
        cert = {c.kind: c for c in tb.make_certificates(root / "pki")}[args.cert]
        backend = tb.NginxBackend(root / "backend", tb.free_port(), "1")
        backend.start()
        proxies: dict[str, tb.Server] = {}
        try:
            for tree in args.trees:
                proxies[tree] = _start(tree, root, cert, backend.port)
            for proxy in proxies.values():  # warm-up
                _burst(test, proxy, 1.0, hsbench)
            costs: dict[str, list[float]] = {tree: [] for tree in proxies}
            for round_number in range(1, args.rounds + 1):
                for tree, proxy in proxies.items():
                    costs[tree].append(_burst(test, proxy, args.seconds, hsbench))
                cells = "  ".join(f"{tree}={costs[tree][-1]:.1f}" for tree in proxies)
                print(f"round {round_number}: {cells}", flush=True)
            unit = "µs/MiB" if test == "bulk" else "µs/op"
            for tree, values in costs.items():
                print(
                    f"{tree}: median {statistics.median(values):.1f} {unit}, min {min(values):.1f}"
                )
        finally:
            for proxy in proxies.values():
                proxy.stop()
            backend.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
