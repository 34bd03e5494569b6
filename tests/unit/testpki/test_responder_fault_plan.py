"""Fault plans as JSON and Python values; `-passin` sources; GET path decoding."""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import pytest

from staplegate.testpki.faults import Fault, FaultKind, FaultPlan, FaultPlanError, parse_serial
from staplegate.testpki.responder import decode_get_path
from staplegate.testpki.responder_cli import PassinError, read_passin


def test_plan_round_trips_through_json() -> None:
    plan = FaultPlan.of(
        [
            Fault(FaultKind.DELAY, serial=0x1A2B, seconds=0.5),
            Fault(FaultKind.HUGE_BODY, size=1024, times=2),
            Fault(FaultKind.CONNECTION_RESET),
        ]
    )
    data = plan.to_json()
    assert data["faults"][0] == {"kind": "delay", "serial": "1A2B", "seconds": 0.5}
    assert data["faults"][2] == {"kind": "reset"}
    assert FaultPlan.from_json(data) == plan
    assert FaultPlan.parse(b"") == FaultPlan()
    assert not FaultPlan.parse("  ")


def test_bare_list_and_serial_spellings() -> None:
    plan = FaultPlan.parse('[{"kind": "stale", "serial": "0x0A:1B"}, {"kind": "http-500"}]')
    assert plan.faults[0] == Fault(FaultKind.STALE, serial=0x0A1B)
    assert plan.faults[1].matches(None)
    assert plan.faults[1].matches(5)
    assert not plan.faults[0].matches(5)
    assert parse_serial(42) == 42


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not JSON"),
        ('{"faults": [{"kind": "nope"}]}', "fault #1: unknown kind 'nope'"),
        ('{"faults": [{"kind": "delay", "seconds": -1}]}', "seconds must be >= 0"),
        ('[{"kind": "http-500", "times": 0}]', "times must be >= 1"),
        ('[{"kind": "http-500", "serial": "xyz"}]', "not hexadecimal"),
        ('[{"kind": "http-500", "colour": "red"}]', "unknown field(s) colour"),
        ('{"fault": []}', "unknown field(s) fault"),
        ('"http-500"', "expected"),
    ],
)
def test_bad_plans_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(FaultPlanError) as caught:
        FaultPlan.parse(text)
    assert message in str(caught.value)


def test_http_level_split() -> None:
    assert FaultKind.HTTP_500.is_http_level
    assert FaultKind.CONNECTION_RESET.is_http_level
    assert not FaultKind.STALE.is_http_level
    assert not FaultKind.TRY_LATER.is_http_level


def test_passin_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert read_passin("pass:s3cret") == b"s3cret"
    monkeypatch.setenv("SG_PASS", "from-env")
    assert read_passin("env:SG_PASS") == b"from-env"
    secret = tmp_path / "pass.txt"
    secret.write_text("from-file\nsecond line\n")
    assert read_passin(f"file:{secret}") == b"from-file"
    assert read_passin("stdin", stdin=io.StringIO("typed\n")) == b"typed"
    read_end, write_end = os.pipe()
    os.write(write_end, b"from-fd\n")
    os.close(write_end)
    try:
        assert read_passin(f"fd:{read_end}") == b"from-fd"
    finally:
        os.close(read_end)
    for bad, message in [
        ("env:SG_NOT_SET_ANYWHERE", "not set"),
        (f"file:{tmp_path / 'missing'}", "No such file"),
        ("prompt:x", "use pass:TEXT"),
    ]:
        with pytest.raises(PassinError, match=message):
            read_passin(bad)


def test_get_path_decoding() -> None:
    der = bytes([0x30, 0x45, 0x00, 0xFB, 0xEF, 0xBE, 0xFF, 0xFF, 0xFF]) + bytes(range(62))
    assert len(der) == 0x45 + 2
    text = base64.b64encode(der).decode()
    assert "/" in text
    assert "+" in text
    encoded = text.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    assert decode_get_path("/" + encoded) == der
    assert decode_get_path("/" + text) == der
    assert decode_get_path("/ocsp/" + encoded) == der
    assert decode_get_path("/" + encoded + "?x=1") == der
    assert decode_get_path("/%%%") is None
    assert decode_get_path("/" + base64.b64encode(b"\x30\x05abc").decode()) is None  # bad length
    assert decode_get_path("/") is None
