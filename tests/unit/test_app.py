"""The composition root's one pure step: the global `log` lines as log targets.

The rest of app.py builds and runs the server process; the e2e tests start it
(tests/e2e/test_lifecycle_e2e.py).
"""

from __future__ import annotations

import pytest

from staplegate.app import log_targets
from staplegate.config.model import GlobalSettings
from staplegate.config.parser.dispatch import parse_texts
from staplegate.config.semantic import build_config
from staplegate.observe.log import SyslogTarget

TAIL = """\
defaults
    timeout connect 1s
    timeout client 1s
    timeout server 1s
backend web
    server web1 127.0.0.1:9
"""


def global_settings(lines: str) -> GlobalSettings:
    config, diagnostics = build_config(parse_texts([("t.cfg", f"global\n{lines}{TAIL}")], env={}))
    assert config is not None, [str(d) for d in diagnostics]
    return config.global_


def test_each_log_line_becomes_a_target_with_its_levels_and_the_tag() -> None:
    settings = global_settings(
        "    log-tag edge\n"
        "    log stdout format raw local0 info\n"
        "    log /dev/log len 2048 local1 notice err\n"
        "    log 127.0.0.1 local2\n"
    )
    assert log_targets(settings) == [
        SyslogTarget("stdout", None, "local0", "info", "emerg", 1024, "raw", "edge"),
        SyslogTarget("unix", "/dev/log", "local1", "notice", "err", 2048, "rfc3164", "edge"),
        SyslogTarget(
            "udp", ("127.0.0.1", 514), "local2", "debug", "emerg", 1024, "rfc3164", "edge"
        ),
    ]


def test_without_log_lines_notices_go_to_stderr() -> None:
    (target,) = log_targets(global_settings(""))
    assert (target.kind, target.max_level, target.format) == ("stderr", "notice", "raw")


def test_an_unsupported_target_is_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    settings = global_settings("    log ring@buffer local0\n    log stderr local0\n")
    targets = log_targets(settings)
    assert [target.kind for target in targets] == ["stderr"]
    assert "not supported yet" in caplog.text
