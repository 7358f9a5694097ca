"""The one rate limit for progress messages and redraws (gptcore.util.throttle)."""

from __future__ import annotations

from gptcore.util.throttle import Throttle


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.now


def test_the_first_call_is_ready_then_one_per_interval() -> None:
    clock = FakeClock()
    throttle = Throttle(10.0, clock=clock)
    answers = []
    for _ in range(25):  # 25 calls 1 s apart: the first, then one every 10 s
        answers.append(throttle.ready())
        clock.now += 1.0
    assert [i for i, yes in enumerate(answers) if yes] == [0, 10, 20]
    assert clock.calls == 25


def test_the_interval_restarts_at_a_yes_not_at_a_no() -> None:
    throttle = Throttle(1.0)
    assert throttle.ready(now=10.0)
    assert not throttle.ready(now=10.9)  # refused: does not move the interval
    assert throttle.ready(now=11.0)
    assert not throttle.ready(now=11.5)
    assert throttle.ready(now=12.0)


def test_force_is_always_ready_and_restarts_the_interval() -> None:
    throttle = Throttle(1.0)
    assert throttle.ready(now=0.0)
    assert throttle.ready(now=0.2, force=True)  # e.g. the last update of a job
    assert not throttle.ready(now=1.1)  # within 1 s of the forced one
    assert throttle.ready(now=1.2)


def test_an_explicit_time_does_not_read_the_clock() -> None:
    clock = FakeClock()
    throttle = Throttle(0.5, clock=clock)
    assert throttle.ready(now=1.0) and not throttle.ready(now=1.4)
    assert clock.calls == 0


def test_a_zero_interval_is_always_ready() -> None:
    throttle = Throttle(0.0)
    assert all(throttle.ready(now=5.0) for _ in range(3))
