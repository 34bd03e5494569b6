"""ForkedCall: one function run in a forked child, its pickled result taken back."""

from __future__ import annotations

import os
import signal

import pytest

from staplegate.process.forked import ForkedCall


def test_the_result_comes_back_from_another_process() -> None:
    parent = os.getpid()
    big = bytes(range(256)) * 8192  # 2 MiB: more than a pipe holds, drained while waiting

    call = ForkedCall(lambda: (os.getpid(), os.getppid(), big))
    child, its_parent, data = call.result() or (0, 0, b"")

    assert child == call.pid != parent
    assert its_parent == parent
    assert data == big
    with pytest.raises(ChildProcessError):
        os.waitpid(call.pid, os.WNOHANG)  # reaped
    assert call.result() is None  # asked again: nothing, no second wait


def test_the_child_sees_the_parent_state_at_the_fork() -> None:
    state = {"certificates": 3}
    call = ForkedCall(lambda: state["certificates"] * 2)
    state["certificates"] = 100  # after the fork: the child does not see it
    assert call.result() == 6


def test_a_child_that_raises_gives_none() -> None:
    def fail() -> int:
        raise OSError("the disk went away")

    assert ForkedCall(fail).result() is None


def test_a_result_that_does_not_pickle_gives_none() -> None:
    assert ForkedCall(lambda: lambda: None).result() is None


def test_the_child_takes_default_signal_actions() -> None:
    def handlers() -> list[object]:
        return [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR2)]

    previous = signal.signal(signal.SIGUSR2, lambda *_: None)
    try:
        assert ForkedCall(handlers).result() == [signal.SIG_DFL, signal.SIG_DFL]
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_cancel_stops_a_child_that_has_not_finished() -> None:
    never_read, never_written = os.pipe()
    try:
        call = ForkedCall(lambda: os.read(never_read, 1))  # blocks until killed
        call.cancel()
        with pytest.raises(ChildProcessError):
            os.waitpid(call.pid, os.WNOHANG)
        assert call.result() is None
        call.cancel()  # twice: nothing to do
    finally:
        os.close(never_read)
        os.close(never_written)
