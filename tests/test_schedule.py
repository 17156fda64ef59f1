"""The schedule the axis poller keeps: due at once, then every so often; after failures at
waits doubling up to that, and forgotten when done with."""

from __future__ import annotations

from lgsp_adapter.exchange.schedule import Schedule


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_wait_longer_each_time_and_a_success_resets_them() -> None:
    clock = Clock()
    schedule = Schedule(3600, first_wait_s=60, clock=clock)
    assert schedule.due("axis")
    assert [schedule.failed("axis") for _ in range(8)] == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert not schedule.due("axis")
    clock.now += 3600
    assert schedule.due("axis")
    schedule.done("axis")
    assert not schedule.due("axis")
    clock.now += 3600
    assert schedule.due("axis")
    assert schedule.failed("axis") == 60  # the failures before the success are forgotten


def test_keys_not_seen_any_more_are_forgotten() -> None:
    clock = Clock()
    schedule = Schedule(3600, clock=clock)
    schedule.failed("doc-1")
    schedule.failed("doc-2")
    schedule.keep_only(["doc-2"])
    assert schedule.due("doc-1")
    assert not schedule.due("doc-2")
    schedule.forget("doc-2")
    assert schedule.due("doc-2")
