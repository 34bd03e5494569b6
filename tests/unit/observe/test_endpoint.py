"""parse_metrics_address: `--metrics HOST:PORT`, and the fix when it is something else."""

from __future__ import annotations

import pytest

from staplegate.observe.endpoint import parse_metrics_address


@pytest.mark.parametrize("text", ["9101", "localhost", "127.0.0.1:http", ":9101", "h:70000"])
def test_a_bad_metrics_address_says_how_to_write_it(text: str) -> None:
    with pytest.raises(ValueError, match="--metrics expects HOST:PORT"):
        parse_metrics_address(text)
    assert parse_metrics_address("[::1]:9101") == ("::1", 9101)
