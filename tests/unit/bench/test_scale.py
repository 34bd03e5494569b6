"""bench/scale.py: the Pss and worker-log parsing, and the generated state directory being one
that staplegate's own store loads in full (the benchmark's "0 responder requests" rests on it)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from staplegate.store import FileStapleStore

REPOSITORY = Path(__file__).resolve().parents[3]

SMAPS_ROLLUP = """\
55d0c0a00000-7ffd5b9fe000 ---p 00000000 00:00 0                          [rollup]
Rss:              195332 kB
Pss:               86113 kB
Pss_Anon:          60120 kB
Shared_Clean:      20000 kB
"""


def load_scale() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scale", REPOSITORY / "bench" / "scale.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_pss_is_read_from_smaps_rollup_in_bytes() -> None:
    assert load_scale().parse_pss(SMAPS_ROLLUP) == 86113 * 1024


def test_worker_table_lines_give_pid_and_size() -> None:
    scale = load_scale()
    assert scale.parse_worker_table("worker 4242: staple table replaced: 5000 staples") == (
        4242,
        5000,
    )
    assert scale.parse_worker_table(
        "worker 7: staple table: 12 changed, 0 withdrawn: 50000 staples"
    ) == (7, 50000)
    assert scale.parse_worker_table("staplegate started: 2 workers") is None


def test_generated_staples_load_from_the_state_directory(tmp_path: Path) -> None:
    setup = load_scale().generate(tmp_path, 3, "http://127.0.0.1:9/")
    scan = FileStapleStore(setup.state).scan()
    assert len(scan.staples) == 3
    assert not scan.problems
    assert len(setup.crt_list.read_text().splitlines()) == 3
    assert setup.names == [f"host{i}.bench.test" for i in range(3)]
