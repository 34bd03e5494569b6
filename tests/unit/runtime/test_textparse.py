"""The runtime API's text answers read back into data for `staplegate ctl --json` (pure)."""

from __future__ import annotations

from staplegate.runtime.textparse import parse_answer


def test_parse_answers() -> None:
    assert parse_answer("show info", "Name: staplegate\nPid: 4") == {
        "Name": "staplegate",
        "Pid": "4",
    }
    assert parse_answer("show ssl cert", "# transaction\n*a\n# filename\na\nb") == {
        "transaction": ["*a"],
        "filename": ["a", "b"],
    }
    assert parse_answer(
        "show ssl crt-list -n /l", "# /l\n/a.pem:1 [alpn h2 ocsp-update on] a b\n/b.pem:2"
    ) == {
        "crt-list": "/l",
        "entries": [
            {
                "store": "/a.pem",
                "line": 1,
                "options": "alpn h2 ocsp-update on",
                "sni_filters": ["a", "b"],
            },
            {"store": "/b.pem", "line": 2, "options": "", "sni_filters": []},
        ],
    }
    assert parse_answer(
        "show ssl ocsp-response",
        "# Certificate IDs\nCertificate ID key : 30ab\nCertificate path : /a.pem\n"
        " Certificate ID:\n   Serial Number: 0A",
    ) == [{"Certificate ID key": "30ab", "Certificate path": "/a.pem", "Serial Number": "0A"}]
    assert parse_answer("show info", "Permission denied") == {"answer": "Permission denied"}


def test_servers_state_and_ocsp_updates_tables() -> None:
    servers = "1\n# be_id be_name srv_id srv_name\n3 be_app 1 web1\n"
    assert parse_answer("show servers state", servers) == [
        {"be_id": "3", "be_name": "be_app", "srv_id": "1", "srv_name": "web1"}
    ]
    updates = "OCSP Certid | Path | Failures\n30ab | /a.pem | 0 | extra"
    assert parse_answer("show ssl ocsp-updates", updates) == [
        {"OCSP Certid": "30ab", "Path": "/a.pem", "Failures": "0 | extra"}
    ]


def test_an_answer_without_the_expected_layout_comes_back_as_text() -> None:
    for command in ("show stat", "show servers state", "show ssl ocsp-updates", "frobnicate"):
        assert parse_answer(command, "Unknown command.") == {"answer": "Unknown command."}
    assert parse_answer("show ssl ocsp-response 30ab", "base64") == {"answer": "base64"}


def test_update_and_reload_answers_become_structures() -> None:
    line = '<OCSP-UPDATE> /etc/my certs/www.pem 2 "HTTP error (HTTP 500 from http://r)" 3 5'
    assert parse_answer("update ssl ocsp-response /etc/my certs/www.pem", line) == {
        "path": "/etc/my certs/www.pem",
        "status": 2,
        "status_text": "HTTP error (HTTP 500 from http://r)",
        "failures": 3,
        "successes": 5,
    }
    running = "OCSP update for /a.pem still running: all fetch slots busy"
    assert parse_answer("update ssl ocsp-response /a.pem", running) == {"answer": running}
    report = "Success=1\n--\nreloaded: 2 workers\n[WARNING] a"
    expected = {"success": True, "message": "reloaded: 2 workers", "lines": ["[WARNING] a"]}
    assert parse_answer("reload", report) == expected
    assert parse_answer("show reload", report) == expected
    assert parse_answer("show reload", "No reload yet.") == {"answer": "No reload yet."}
    assert parse_answer("disable server be/web1", "") == {"answer": ""}


def test_update_ssl_crl_answer_becomes_a_structure() -> None:
    answer = 'http://ca.test/crl: ok "2 certificate(s), 0 revoked" (3 successes, 1 failures)'
    assert parse_answer("update ssl crl http://ca.test/crl", answer) == {
        "url": "http://ca.test/crl",
        "result": 'ok "2 certificate(s), 0 revoked"',
        "successes": 3,
        "failures": 1,
    }
    refused = "'x' is neither a watched CRL URL nor a certificate the CRL watch follows"
    assert parse_answer("update ssl crl x", refused) == {"answer": refused}
