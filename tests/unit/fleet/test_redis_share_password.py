"""Where the Redis password comes from, and that no message or URL shown ever carries it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from staplegate.fleet.redis_share import PasswordError, display_url, read_password


def test_the_file_wins_over_the_environment_and_only_its_first_line_counts(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "redis.pass"
    secret.write_text("from-file\nsecond line\n", encoding="utf-8")
    secret.chmod(0o600)
    env = {"STAPLEGATE_REDIS_PASSWORD": "from-env"}
    assert read_password(str(secret), env) == "from-file"
    assert read_password(None, env) == "from-env"
    assert read_password(None, {}) is None


def test_a_file_others_can_read_is_used_with_a_warning_that_does_not_show_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "redis.pass"
    secret.write_text("hunter2\n", encoding="utf-8")
    secret.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="staplegate.fleet"):
        assert read_password(str(secret), {}) == "hunter2"
    assert "chmod 600" in caplog.text
    assert "hunter2" not in caplog.text


def test_an_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PasswordError, match=r"cannot read the Redis password file .*missing"):
        read_password(str(tmp_path / "missing"), {})


def test_urls_are_shown_without_credentials() -> None:
    assert display_url("rediss://:pw@redis.internal:6380/2") == "rediss://redis.internal:6380/2"
    assert display_url("redis://[::1]:6379/0") == "redis://[::1]:6379/0"
    assert display_url("redis://127.0.0.1") == "redis://127.0.0.1"
