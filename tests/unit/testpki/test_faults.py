"""Fault plans as JSON and Python values (what the test responder is told to get wrong)."""

from __future__ import annotations

import pytest

from staplegate.testpki.faults import Fault, FaultKind, FaultPlan, FaultPlanError, parse_serial


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
