#!/usr/bin/env python3
"""Run every fuzz target in tests/fuzz_targets for a million mutated inputs each.

A target (interface in tests/fuzz_targets/__init__.py) is a module with `NAME`, `seeds()` and
`run_one(data)`; `run_one` raises `Disagreement` when a differential or safety check fails,
and any other exception escaping it is a bug. The default suite feeds the same targets a few
hundred hypothesis examples; this runner goes wide instead: a plain byte mutator (no coverage
feedback) stacks 1-8 edits on a seed — bit flips, byte insert/delete/replace, small
arithmetic, AFL's interesting 8/16/32-bit values, protocol tokens (CR LF, NUL, ':', big
numbers), chunk duplication, truncation, and splicing two seeds. Each target first runs its
seeds unchanged.

    .venv/bin/python bench/fuzz.py                        # every target, 1,000,000 inputs each
    .venv/bin/python bench/fuzz.py --targets proxy_v1,proxy_v2 --inputs 200000 --jobs 2
    .venv/bin/python bench/fuzz.py --save /tmp/fuzz-out    # keep each distinct failure's input
    .venv/bin/python bench/fuzz.py --targets proxy_v1 --replay /tmp/fuzz-out/proxy_v1-1.bin

It prints, per target: inputs run, unexpected exceptions, disagreements, hangs (an input
running longer than `--timeout`), inputs/s per process and the slowest input; then, for each
target that failed, the first few distinct failures (by exception type and the line that
raised it) with a count, the first input that caused it and its traceback. The inputs depend
only on `--seed`, the target's name and its seeds, never on `--jobs`: a rerun with the same
seed reproduces every finding. Exit status 0 when nothing failed, 1 otherwise, 2 for usage.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import importlib
import importlib.util
import json
import multiprocessing
import os
import random
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import Final, Protocol, cast

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_TARGETS_DIR: Final = REPO_ROOT / "tests" / "fuzz_targets"
# This tree's own code, ahead of an editable install of another checkout but after an
# explicit PYTHONPATH (sys.path: this script's directory, then PYTHONPATH's entries).
sys.path.insert(
    1 + len([p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]),
    str(REPO_ROOT / "src"),
)
sys.path.insert(0, str(REPO_ROOT))  # `tests.fuzz_targets` is a package of the repository

from tests.fuzz_targets import Disagreement  # noqa: E402 - needs the path above

DEFAULT_INPUTS: Final = 1_000_000
#: Inputs per work unit. Fixed, so the inputs a seed produces do not depend on --jobs.
SHARD_SIZE: Final = 20_000
SHOWN_PER_TARGET: Final = 3

# AFL's interesting values: boundaries where length and count arithmetic goes wrong.
INTERESTING_8: Final = (-128, -1, 0, 1, 16, 32, 64, 100, 127)
INTERESTING_16: Final = (-32768, -129, 128, 255, 256, 512, 1000, 1024, 4096, 32767)
INTERESTING_32: Final = (
    -2147483648,
    -100663046,
    -32769,
    32768,
    65535,
    65536,
    100663045,
    2147483647,
)
# Bytes that delimit or size things in the text protocols we parse (HTTP, PROXY v1, config,
# runtime commands).
TOKENS: Final = (
    b"\r\n", b"\n", b"\r", b"\r\n\r\n", b"\x00", b" ", b"\t", b":", b";", b",", b"=", b"/",
    b"%", b"\\", b'"', b"{", b"}", b"0", b"-1", b"+1", b"00000000000000000001",
    b"ffffffffffffffff", b"18446744073709551616", b"4294967296", b"\x7f", b"\x80", b"\xff",
    b"\xc0\x80", b"chunked", b"Content-Length", b"Transfer-Encoding", b"Host", b"PROXY",
)  # fmt: skip


class FuzzTarget(Protocol):
    """The module interface of tests/fuzz_targets/<name>.py."""

    NAME: str

    def seeds(self) -> list[bytes]: ...

    def run_one(self, data: bytes) -> None: ...


# --- the mutator ---


class ByteMutator:
    """Deterministic havoc-style mutations of a seed list (no coverage feedback)."""

    def __init__(self, seeds: Sequence[bytes], rng: random.Random, *, max_len: int) -> None:
        self.seeds = [bytes(s) for s in seeds] or [b""]
        self.rng = rng
        self.max_len = max_len
        self._edits: tuple[Callable[[bytearray], None], ...] = (
            self._flip_bit,
            self._flip_bit,
            self._replace_byte,
            self._replace_byte,
            self._arithmetic,
            self._insert_bytes,
            self._delete_bytes,
            self._delete_bytes,
            self._interesting,
            self._interesting,
            self._token,
            self._token,
            self._duplicate_chunk,
            self._truncate,
            self._splice,
        )

    def mutate(self) -> bytes:
        rng = self.rng
        data = bytearray(rng.choice(self.seeds))
        for _ in range(1 << rng.randrange(4)):  # 1, 2, 4 or 8 stacked edits
            rng.choice(self._edits)(data)
        if len(data) > self.max_len:
            del data[self.max_len :]
        return bytes(data)

    def _position(self, data: bytearray, *, end: bool = False) -> int:
        return self.rng.randrange(len(data) + 1 if end else max(len(data), 1))

    def _flip_bit(self, data: bytearray) -> None:
        if data:
            data[self._position(data)] ^= 1 << self.rng.randrange(8)

    def _replace_byte(self, data: bytearray) -> None:
        if data:
            data[self._position(data)] = self.rng.randrange(256)

    def _arithmetic(self, data: bytearray) -> None:
        if data:
            at = self._position(data)
            data[at] = (data[at] + self.rng.randint(-35, 35)) & 0xFF

    def _insert_bytes(self, data: bytearray) -> None:
        rng = self.rng
        count = rng.choice((1, 1, 1, 2, 4, 16, 128))
        value = bytes([rng.randrange(256)]) * count if rng.random() < 0.5 else rng.randbytes(count)
        at = self._position(data, end=True)
        data[at:at] = value

    def _delete_bytes(self, data: bytearray) -> None:
        if data:
            at = self._position(data)
            count = min(len(data) - at, self.rng.choice((1, 1, 1, 2, 4, 16, 128)))
            del data[at : at + count]

    def _interesting(self, data: bytearray) -> None:
        rng = self.rng
        width = rng.choice((1, 2, 4))
        values = {1: INTERESTING_8, 2: INTERESTING_16, 4: INTERESTING_32}[width]
        raw = (rng.choice(values) % (1 << (8 * width))).to_bytes(
            width, rng.choice(("big", "little"))
        )
        at = self._position(data, end=True)
        data[at : at + width] = raw

    def _token(self, data: bytearray) -> None:
        token = self.rng.choice(TOKENS)
        at = self._position(data, end=True)
        if self.rng.random() < 0.5:
            data[at:at] = token  # insert
        else:
            data[at : at + len(token)] = token  # overwrite

    def _duplicate_chunk(self, data: bytearray) -> None:
        if data:
            start = self._position(data)
            chunk = bytes(data[start : start + self.rng.randint(1, 64)])
            at = self._position(data, end=True)
            data[at:at] = chunk * self.rng.choice((1, 1, 2, 8))

    def _truncate(self, data: bytearray) -> None:
        del data[self._position(data, end=True) :]

    def _splice(self, data: bytearray) -> None:
        other = self.rng.choice(self.seeds)
        data[self._position(data, end=True) :] = other[self.rng.randrange(len(other) + 1) :]


# --- targets ---


@dataclass(frozen=True)
class TargetRef:
    """Where a target module lives; picklable, so worker processes load it themselves."""

    module: str  # file name without .py
    directory: str

    def load(self) -> FuzzTarget:
        return cast(FuzzTarget, _load_module(self.directory, self.module))


_LOADED: dict[tuple[str, str], ModuleType] = {}


def _load_module(directory: str, module: str) -> ModuleType:
    key = (directory, module)
    if key not in _LOADED:
        if Path(directory).resolve() == DEFAULT_TARGETS_DIR.resolve():
            _LOADED[key] = importlib.import_module(f"tests.fuzz_targets.{module}")
        else:  # --targets-dir: any directory of target modules
            name = f"_fuzz_target_{abs(hash(directory))}_{module}"
            spec = importlib.util.spec_from_file_location(name, Path(directory, f"{module}.py"))
            assert spec is not None
            assert spec.loader is not None
            loaded = importlib.util.module_from_spec(spec)
            sys.modules[name] = loaded
            spec.loader.exec_module(loaded)
            _LOADED[key] = loaded
    return _LOADED[key]


def discover(directory: Path) -> list[tuple[TargetRef, str]]:
    """Every target module in `directory`, with its NAME, in file-name order."""
    found = []
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith("_"):
            continue  # __init__.py and private helpers
        ref = TargetRef(path.stem, str(directory))
        module = ref.load()
        missing = [a for a in ("NAME", "seeds", "run_one") if not hasattr(module, a)]
        if missing:
            print(
                f"fuzz: {path} is not a target (no {', '.join(missing)}); skipped", file=sys.stderr
            )
            continue
        found.append((ref, str(module.NAME)))
    return found


def select(found: list[tuple[TargetRef, str]], wanted: str | None) -> list[tuple[TargetRef, str]]:
    """The targets `--targets a,b` names (by module or NAME), in discovery order."""
    if not wanted:
        return found
    names = {w.strip() for w in wanted.split(",") if w.strip()}
    chosen = [(ref, name) for ref, name in found if ref.module in names or name in names]
    unknown = names - {ref.module for ref, _ in chosen} - {name for _, name in chosen}
    if unknown:
        known = ", ".join(name for _, name in found) or "none"
        raise SystemExit(f"fuzz: no target {', '.join(sorted(unknown))} (found: {known})")
    return chosen


# --- running ---


class InputTimeout(BaseException):
    """Raised from SIGALRM when one input runs too long (a BaseException: targets that catch
    Exception cannot swallow it)."""


def _on_alarm(_signum: int, _frame: FrameType | None) -> None:
    raise InputTimeout


@dataclass
class Failure:
    """One distinct failure of a target: an exception type raised at one place."""

    kind: str  # "exception", "disagreement" or "hang"
    type: str
    location: str  # file:line in function, of the frame that raised
    count: int
    first_input: bytes
    message: str
    traceback: str


@dataclass
class UnitResult:
    inputs: int = 0
    exceptions: int = 0
    disagreements: int = 0
    hangs: int = 0
    seconds: float = 0.0
    slowest_s: float = 0.0
    failures: dict[str, Failure] = field(default_factory=dict)

    def merge(self, other: UnitResult) -> None:
        self.inputs += other.inputs
        self.exceptions += other.exceptions
        self.disagreements += other.disagreements
        self.hangs += other.hangs
        self.seconds += other.seconds
        self.slowest_s = max(self.slowest_s, other.slowest_s)
        for key, failure in other.failures.items():
            mine = self.failures.get(key)
            if mine is None:
                self.failures[key] = failure
            else:
                mine.count += failure.count


@dataclass(frozen=True)
class Unit:
    """`count` inputs of one target: shard `shard` of the target's input stream."""

    ref: TargetRef
    name: str
    shard: int
    count: int
    seed: int
    max_len: int
    timeout_s: float


def _relative(filename: str) -> str:
    try:
        return str(Path(filename).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return filename


def _failure_key(kind: str, error: BaseException) -> tuple[str, str, str]:
    """(key, type, location): the type and the innermost frame that raised it."""
    frames = traceback.extract_tb(error.__traceback__)
    where = "?"
    if frames:
        last = frames[-1]
        where = f"{_relative(last.filename)}:{last.lineno} in {last.name}"
    kind_type = type(error).__qualname__
    return f"{kind}|{kind_type}|{where}", kind_type, where


def _record(result: UnitResult, error: BaseException, data: bytes) -> None:
    """Count one failure under its distinct key; keep the first input and traceback of each."""
    if isinstance(error, InputTimeout):
        # where the alarm struck varies from input to input: one entry for every hang, shown
        # where the first one was
        kind = "hang"
        _, type_name, where = _failure_key(kind, error)
        key = kind
    else:
        kind = "disagreement" if isinstance(error, Disagreement) else "exception"
        key, type_name, where = _failure_key(kind, error)
    known = result.failures.get(key)
    if known is not None:
        known.count += 1
        return
    text = str(error)
    result.failures[key] = Failure(
        kind=kind,
        type=type_name,
        location=where,
        count=1,
        first_input=data,
        message=text.splitlines()[0][:300] if text else "",
        traceback="".join(traceback.format_exception(error)),
    )


def inputs_of(unit: Unit, target: FuzzTarget) -> Iterator[bytes]:
    """The inputs of one shard: shard 0 starts with the seeds themselves."""
    seeds = list(target.seeds())
    rng = random.Random(f"{unit.seed}:{unit.name}:{unit.shard}")
    mutator = ByteMutator(seeds, rng, max_len=unit.max_len)
    produced = 0
    if unit.shard == 0:
        for seed in seeds[: unit.count]:
            produced += 1
            yield seed
    while produced < unit.count:
        produced += 1
        yield mutator.mutate()


def run_unit(unit: Unit) -> UnitResult:
    """Run one shard; every failure is counted and the first of each kind kept."""
    target = unit.ref.load()
    result = UnitResult()
    use_alarm = unit.timeout_s > 0
    previous = signal.signal(signal.SIGALRM, _on_alarm) if use_alarm else None
    started = time.perf_counter()
    try:
        for data in inputs_of(unit, target):
            result.inputs += 1
            caught: BaseException | None = None
            before = time.perf_counter()
            try:
                if use_alarm:
                    signal.setitimer(signal.ITIMER_REAL, unit.timeout_s)
                try:
                    target.run_one(data)
                finally:
                    if use_alarm:
                        signal.setitimer(signal.ITIMER_REAL, 0)
            except InputTimeout as error:
                caught = error
                result.hangs += 1
            except Disagreement as error:
                caught = error
                result.disagreements += 1
            except Exception as error:  # the finding this runner exists for
                caught = error
                result.exceptions += 1
            result.slowest_s = max(result.slowest_s, time.perf_counter() - before)
            if caught is not None:
                _record(result, caught, data)
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    result.seconds = time.perf_counter() - started
    return result


def units_for(
    ref: TargetRef, name: str, *, inputs: int, seed: int, max_len: int, timeout_s: float
) -> list[Unit]:
    units = []
    for shard, start in enumerate(range(0, inputs, SHARD_SIZE)):
        count = min(SHARD_SIZE, inputs - start)
        units.append(Unit(ref, name, shard, count, seed, max_len, timeout_s))
    return units


def run_all(
    targets: list[tuple[TargetRef, str]],
    *,
    inputs: int,
    seed: int,
    jobs: int,
    max_len: int,
    timeout_s: float,
    progress: Callable[[str, UnitResult], None] | None = None,
) -> dict[str, UnitResult]:
    """Every target's merged result, by NAME (in the order given)."""
    results = {name: UnitResult() for _, name in targets}
    remaining = {name: 0 for _, name in targets}
    units = []
    for ref, name in targets:
        mine = units_for(ref, name, inputs=inputs, seed=seed, max_len=max_len, timeout_s=timeout_s)
        remaining[name] = len(mine)
        units.extend(mine)

    def done(unit: Unit, result: UnitResult) -> None:
        results[unit.name].merge(result)
        remaining[unit.name] -= 1
        if remaining[unit.name] == 0 and progress is not None:
            progress(unit.name, results[unit.name])

    if jobs <= 1:
        for unit in units:
            done(unit, run_unit(unit))
        return results
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {pool.submit(run_unit, unit): unit for unit in units}
        for future in concurrent.futures.as_completed(futures):
            done(futures[future], future.result())
    return results


# --- reporting ---


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _shown_input(data: bytes, limit: int = 120) -> str:
    text = repr(data[:limit])
    return text + (f" … ({len(data)} bytes)" if len(data) > limit else f" ({len(data)} bytes)")


def print_table(results: dict[str, UnitResult], out: Callable[[str], None]) -> None:
    width = max([len("target"), *(len(name) for name in results)])
    out(
        f"{'target':<{width}}  {'inputs':>11}  {'exceptions':>10}  {'disagreements':>13}  "
        f"{'hangs':>5}  {'inputs/s':>9}  {'slowest':>9}"
    )
    for name, r in results.items():
        rate = r.inputs / r.seconds if r.seconds else 0.0
        out(
            f"{name:<{width}}  {r.inputs:>11,}  {r.exceptions:>10,}  {r.disagreements:>13,}  "
            f"{r.hangs:>5,}  {rate:>9,.0f}  {r.slowest_s * 1000:>7.1f}ms"
        )


def print_failures(
    results: dict[str, UnitResult],
    out: Callable[[str], None],
    *,
    shown: int,
    save: Path | None,
) -> None:
    for name, r in results.items():
        if not r.failures:
            continue
        failures = sorted(r.failures.values(), key=lambda f: (-f.count, f.kind, f.location))
        out("")
        out(f"{name}: {_count(len(failures), 'distinct failure')}")
        for index, failure in enumerate(failures, 1):
            saved = ""
            if save is not None:
                path = save / f"{name}-{index}.bin"
                path.write_bytes(failure.first_input)
                saved = f"; input saved as {path}"
            if index > shown:
                if save is None:
                    continue
                out(f"  [{index}] {failure.kind}: {failure.type} at {failure.location}{saved}")
                continue
            out(
                f"  [{index}] {failure.kind}: {failure.type} at {failure.location}: "
                f"{failure.count:,} inputs{saved}"
            )
            if failure.message:
                out(f"      message: {failure.message}")
            out(f"      first input: {_shown_input(failure.first_input)}")
            for line in failure.traceback.rstrip().splitlines()[-12:]:
                out(f"      | {line}")
        if len(failures) > shown and save is None:
            out(f"  … {len(failures) - shown} more (--show N, or --save DIR keeps every input)")


def as_json(results: dict[str, UnitResult], settings: dict[str, object]) -> dict[str, object]:
    targets = {}
    for name, r in results.items():
        targets[name] = {
            "inputs": r.inputs,
            "exceptions": r.exceptions,
            "disagreements": r.disagreements,
            "hangs": r.hangs,
            "seconds": round(r.seconds, 3),
            "inputs_per_s": round(r.inputs / r.seconds) if r.seconds else 0,
            "slowest_ms": round(r.slowest_s * 1000, 3),
            "failures": [
                {**dataclasses.asdict(f), "first_input": f.first_input.hex()}
                for f in r.failures.values()
            ],
        }
    return {"settings": settings, "targets": targets}


def replay(targets: list[tuple[TargetRef, str]], path: Path) -> int:
    """Run one saved input through the chosen targets and show what happens, traceback included."""
    data = path.read_bytes()
    status = 0
    for ref, name in targets:
        try:
            ref.load().run_one(data)
        except Exception:  # shown, not raised: that is the point of a replay
            status = 1
            print(f"{name}: {path} ({len(data)} bytes) fails:")
            traceback.print_exc(file=sys.stdout)
        else:
            print(f"{name}: {path} ({len(data)} bytes) runs cleanly")
    return status


def _positive(text: str) -> int:
    value = int(text.replace("_", "").replace(",", ""))
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/fuzz.py",
        description="Run every fuzz target in tests/fuzz_targets for N mutated inputs.",
    )
    parser.add_argument(
        "--inputs",
        type=_positive,
        default=DEFAULT_INPUTS,
        metavar="N",
        help="per target (1,000,000)",
    )
    parser.add_argument("--targets", metavar="A,B", help="only these (module or NAME)")
    parser.add_argument("--seed", type=int, default=0, help="mutator seed (0)")
    parser.add_argument(
        "--jobs", type=_positive, default=os.cpu_count() or 1, metavar="J", help="processes (CPUs)"
    )
    parser.add_argument(
        "--targets-dir",
        type=Path,
        default=DEFAULT_TARGETS_DIR,
        metavar="DIR",
        help="where the target modules are (tests/fuzz_targets)",
    )
    parser.add_argument(
        "--max-len", type=_positive, default=65_536, metavar="BYTES", help="input size cap (64 KiB)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="an input running longer is a hang (5; 0 disables)",
    )
    parser.add_argument(
        "--show", type=int, default=SHOWN_PER_TARGET, metavar="N", help="failures shown per target"
    )
    parser.add_argument("--save", type=Path, metavar="DIR", help="write each failure's input here")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--replay", type=Path, metavar="FILE", help="run one saved input and exit")
    return parser


def _fuzzed_tree() -> str:
    """Where the `staplegate` under test comes from (targets import it), or "no staplegate"."""
    spec = importlib.util.find_spec("staplegate")
    if spec is None or spec.origin is None:
        return "no staplegate"
    return str(Path(spec.origin).parent.parent)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    directory: Path = args.targets_dir.resolve()
    if not directory.is_dir():
        print(f"fuzz: no target directory {directory}", file=sys.stderr)
        return 2
    targets = select(discover(directory), args.targets)
    if not targets:
        print(f"fuzz: no targets in {directory}", file=sys.stderr)
        return 2
    if args.replay is not None:
        return replay(targets, args.replay)
    if args.save is not None:
        args.save.mkdir(parents=True, exist_ok=True)
    jobs = min(args.jobs, sum(len(range(0, args.inputs, SHARD_SIZE)) for _ in targets))
    tree = _fuzzed_tree()
    print(
        f"fuzz: {_count(len(targets), 'target')} ({', '.join(name for _, name in targets)}) "
        f"on {tree}, "
        f"{args.inputs:,} inputs each, seed {args.seed}, {jobs} jobs, max {args.max_len:,} "
        f"bytes, hang after {args.timeout:g} s",
        flush=True,
    )

    def progress(name: str, result: UnitResult) -> None:
        print(
            f"  {name}: {result.inputs:,} inputs, {result.exceptions:,} exceptions, "
            f"{result.disagreements:,} disagreements, {result.hangs:,} hangs",
            file=sys.stderr,
            flush=True,
        )

    started = time.monotonic()
    results = run_all(
        targets,
        inputs=args.inputs,
        seed=args.seed,
        jobs=jobs,
        max_len=args.max_len,
        timeout_s=args.timeout,
        progress=progress,
    )
    wall = time.monotonic() - started
    print_table(results, print)
    total = UnitResult()
    for result in results.values():
        total.merge(dataclasses.replace(result, failures={}))
    print(
        f"total: {total.inputs:,} inputs in {wall:,.1f} s (wall), {total.exceptions:,} "
        f"unexpected exceptions, {total.disagreements:,} disagreements, {total.hangs:,} hangs"
    )
    print_failures(results, print, shown=max(args.show, 0), save=args.save)
    if args.json is not None:
        settings: dict[str, object] = {
            "inputs": args.inputs,
            "seed": args.seed,
            "jobs": jobs,
            "max_len": args.max_len,
            "timeout_s": args.timeout,
            "wall_s": round(wall, 1),
            "command": " ".join(["bench/fuzz.py", *(sys.argv[1:] if argv is None else argv)]),
        }
        args.json.write_text(json.dumps(as_json(results, settings), indent=2) + "\n")
    failed = total.exceptions or total.disagreements or total.hangs
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
