"""bench/fuzz.py finds, counts and locates planted bugs in throwaway targets, reproducibly.

The targets are written to a temporary directory (`--targets-dir`), so this test does not
depend on the real ones in tests/fuzz_targets; the runner is run as a user runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[3] / "bench" / "fuzz.py"

PLANTED = '''\
"""A length-prefixed record with planted bugs."""

from tests.fuzz_targets import Disagreement

NAME = "planted"


def seeds() -> list[bytes]:
    return [b"\\x03abc", b"\\x05hello"]


def run_one(data: bytes) -> None:
    if not data:
        return
    if data[0] == 0xFF:
        raise IndexError("planted: length 255")  # PLANTED-INDEX
    if b"\\r\\n" in data[1 : 1 + data[0]]:
        raise Disagreement("planted: CR LF inside a record")  # PLANTED-DISAGREEMENT
'''

CLEAN = """\
from tests.fuzz_targets import Disagreement

NAME = "clean"
MAX_LEN = 64


def seeds() -> list[bytes]:
    return [b"x" * 60, b"the second seed"]


def run_one(data: bytes) -> None:
    if len(data) > MAX_LEN:
        raise Disagreement(f"{len(data)} bytes: the --max-len cap did not hold")
    if data == b"the second seed":
        raise ValueError("the seeds run unchanged first")
"""

HANGS = """\
NAME = "hangs"


def seeds() -> list[bytes]:
    return [b"ok"]


def run_one(data: bytes) -> None:
    while data.startswith(b"\\x00"):
        pass
"""

NOT_A_TARGET = """\
NAME = "incomplete"


def seeds() -> list[bytes]:
    return [b""]
"""


@pytest.fixture
def targets_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "targets"
    directory.mkdir()
    for name, text in (
        ("planted", PLANTED),
        ("clean", CLEAN),
        ("hangs", HANGS),
        ("incomplete", NOT_A_TARGET),
        ("_helper", "RAISE_IF_IMPORTED = 1 / 0\n"),
    ):
        (directory / f"{name}.py").write_text(textwrap.dedent(text), encoding="utf-8")
    return directory


def fuzz(targets_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(FUZZ), "--targets-dir", str(targets_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def line_of(text: str, marker: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if marker in line)


def test_planted_bugs_are_counted_and_located(targets_dir: Path, tmp_path: Path) -> None:
    result = fuzz(
        targets_dir, "--targets", "planted", "--inputs", "20000", "--jobs", "1",
        "--json", str(tmp_path / "out.json"),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    counts = json.loads((tmp_path / "out.json").read_text())["targets"]["planted"]
    assert counts["inputs"] == 20_000
    assert counts["exceptions"] > 0
    assert counts["disagreements"] > 0
    assert counts["hangs"] == 0
    path = targets_dir / "planted.py"
    index_line = line_of(PLANTED, "PLANTED-INDEX")
    disagreement_line = line_of(PLANTED, "PLANTED-DISAGREEMENT")
    assert f"exception: IndexError at {path}:{index_line} in run_one" in result.stdout
    assert f"disagreement: Disagreement at {path}:{disagreement_line} in run_one" in result.stdout
    assert "IndexError: planted: length 255" in result.stdout  # the traceback
    assert "planted.py is not a target" not in result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("planted "))
    assert row.split()[1:4] == [
        "20,000",
        f"{counts['exceptions']:,}",
        f"{counts['disagreements']:,}",
    ]


def test_the_same_seed_gives_the_same_inputs_whatever_the_jobs(
    targets_dir: Path, tmp_path: Path
) -> None:
    def counts(jobs: str, seed: str) -> tuple[int, int]:
        out = tmp_path / f"{jobs}-{seed}.json"
        fuzz(
            targets_dir, "--targets", "planted", "--inputs", "30000", "--jobs", jobs,
            "--seed", seed, "--json", str(out),
        )  # fmt: skip
        found = json.loads(out.read_text())["targets"]["planted"]
        return found["exceptions"], found["disagreements"]

    assert counts("1", "7") == counts("2", "7")
    assert counts("1", "7") != counts("1", "8")


def test_a_clean_target_exits_zero_with_seeds_first_and_the_length_cap(
    targets_dir: Path,
) -> None:
    only_seeds = fuzz(targets_dir, "--targets", "clean", "--inputs", "2", "--jobs", "1")
    assert only_seeds.returncode == 1
    assert "ValueError: the seeds run unchanged first" in only_seeds.stdout
    # --max-len 64 holds however much the mutator grows an input (the target checks it)
    capped = fuzz(
        targets_dir, "--targets", "clean", "--inputs", "5000", "--jobs", "1", "--max-len", "64",
        "--seed", "3",
    )  # fmt: skip
    assert "Disagreement" not in capped.stdout, capped.stdout


def test_a_hang_is_reported_after_the_timeout(targets_dir: Path) -> None:
    result = fuzz(
        targets_dir, "--targets", "hangs", "--inputs", "300", "--jobs", "1", "--timeout", "0.05"
    )
    assert result.returncode == 1
    row = next(line for line in result.stdout.splitlines() if line.startswith("hangs "))
    assert int(row.split()[4]) > 0
    assert "hang: InputTimeout at" in result.stdout


def test_target_selection_and_discovery(targets_dir: Path) -> None:
    unknown = fuzz(targets_dir, "--targets", "nope", "--inputs", "1")
    assert unknown.returncode != 0
    assert "no target nope (found: clean, hangs, planted)" in unknown.stderr
    assert "incomplete.py is not a target (no run_one); skipped" in unknown.stderr
    assert "ZeroDivisionError" not in unknown.stderr  # _helper.py is never imported


def test_saved_failures_replay_with_their_traceback(targets_dir: Path, tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    run = fuzz(targets_dir, "--targets", "planted", "--inputs", "5000", "--save", str(saved))
    assert run.returncode == 1
    files = sorted(saved.glob("planted-*.bin"))
    assert len(files) == 2
    replays = [fuzz(targets_dir, "--targets", "planted", "--replay", str(f)) for f in files]
    assert all(r.returncode == 1 for r in replays)
    shown = "".join(r.stdout for r in replays)
    assert "IndexError: planted: length 255" in shown
    assert "Disagreement: planted: CR LF inside a record" in shown
