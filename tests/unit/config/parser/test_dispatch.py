"""Parser dispatch: sections, lines out of section, directives, and diagnostics order."""

from __future__ import annotations

from tests.unit.config.helpers import BACKEND, A, W, errors, one_error, warnings

# ------------------------------------------------------------------ sections


def test_keyword_out_of_section_and_directives() -> None:
    assert one_error("maxconn 10\n") == A.format(1, "unknown keyword 'maxconn' out of section.")
    assert one_error(".if defined(X)\n") == A.format(1, "missing '.endif' at the end of the file.")
    assert one_error(".unless x\n") == A.format(
        1,
        "unknown directive '.unless' (staplegate knows .if, .elif, .else, .endif, .notice, "
        ".warning, .alert and .diag)",
    )


def test_ignored_and_refused_sections() -> None:
    assert warnings("peers mypeers\n    peer a 127.0.0.1:1024\n") == [
        W.format(
            1,
            "'peers' section is ignored: staplegate supports none of the keywords "
            "that could use it",
        )
    ]
    assert one_error("log-forward syslog\n    bind 127.0.0.1:514\n") == A.format(
        1, "'log-forward' sections are not supported by staplegate and would change traffic"
    )


def test_proxy_section_errors() -> None:
    assert one_error("frontend\n") == A.format(1, "'frontend' expects an <id> argument")
    assert one_error("backend bad/name\n") == A.format(
        1, "character '/' is not permitted in 'backend' name 'bad/name'."
    )
    assert one_error(
        "frontend fe from nowhere\n    bind :80\n    default_backend app\n" + BACKEND
    ) == A.format(1, "frontend 'fe': unable to find defaults section 'nowhere'.")


def test_errors_are_all_collected() -> None:
    found = errors(
        "global\n    frobnicate\n    maxconn x\nfrontend fe\n    bind :80 bogus\n"
        "    mode udp\n    default_backend missing\n"
    )
    assert [e.split("] : ", 1)[0].rsplit(":", 1)[1] for e in found] == ["2", "3", "5", "6", "4"]
