"""The real-world configurations (`../shared/real-configs`, issue 18): the number that
`staplegate -c` accepts never goes down, and none makes it print a traceback.

Each configuration is prepared with the corpus' own `prepare.py` (the files it names are
created, addresses made local) and judged with `staplegate -c` only: HAProxy's verdicts are
`run_all.py`'s job (they do not change with our code, and running both doubles the time).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

_REPOSITORY = Path(__file__).resolve().parents[2]
#: `../shared/real-configs` beside the checkout (a worktree one level deeper sees it two up);
#: STAPLEGATE_REAL_CONFIGS names it anywhere else
_CANDIDATES = [
    Path(os.environ.get("STAPLEGATE_REAL_CONFIGS", "/nonexistent")),
    _REPOSITORY.parent / "shared" / "real-configs",
    _REPOSITORY.parent.parent / "shared" / "real-configs",
]
CORPUS = next((p for p in _CANDIDATES if (p / "prepare.py").is_file()), _CANDIDATES[1])
#: raise this when more configurations pass; never lower it
ACCEPTED_FLOOR = 26  # 24 of the 35 HAProxy 2.6 accepts, plus 37 and 41 (HAProxy 3.x)


@pytest.mark.skipif(
    not (CORPUS / "prepare.py").is_file(),
    reason=f"the real-configs corpus is absent ({CORPUS}); nothing to measure",
)
def test_accepted_real_configurations_never_go_down(tmp_path: Path) -> None:
    accepted: list[str] = []
    tracebacks: list[str] = []
    for config in sorted(CORPUS.glob("[0-9][0-9]-*.cfg")):
        out = tmp_path / config.stem
        number = int(config.name[:2])
        subprocess.run(
            [
                sys.executable,
                str(CORPUS / "prepare.py"),
                str(config),
                str(out),
                "--pki",
                str(tmp_path / "pki"),
                "--port-base",
                str(20000 + 100 * number),
            ],
            check=True,
            capture_output=True,
            cwd=CORPUS,
            timeout=60,
        )
        env = dict(os.environ)
        for line in (out / "env").read_text(encoding="utf-8").splitlines():
            name, sep, value = line.partition("=")
            if sep:
                env[name] = value
        checked = subprocess.run(
            [sys.executable, "-m", "staplegate", "-c", "-f", str(out / "haproxy.cfg")],
            capture_output=True,
            text=True,
            cwd=out,
            env=env,
            timeout=120,
        )
        if "Traceback" in checked.stdout + checked.stderr:
            tracebacks.append(config.stem)
        if checked.returncode == 0:
            accepted.append(config.stem)
    assert not tracebacks, tracebacks
    assert len(accepted) >= ACCEPTED_FLOOR, accepted
