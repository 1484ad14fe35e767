"""The receive loop's budget and flood detection (sans-I/O), and websockets' frame-log budget."""

from __future__ import annotations

import logging

from processors.voicelive.connection import FrameLogBudget
from processors.voicelive.inbound import InboundGuard


def test_the_loop_yields_once_per_slice_of_work() -> None:
    guard = InboundGuard(slice_s=0.005)
    yields = [guard.must_yield(k * 0.001) for k in range(20)]  # one message a millisecond
    assert yields.count(True) == 3  # at 5 ms, then 5 ms after the next slice began, ...
    assert yields[:5] == [False] * 5


def test_a_real_session_is_not_a_flood() -> None:
    guard = InboundGuard(flood_rate=300)
    news = [guard.observe(k / 100) for k in range(1000)]  # 100 events a second for 10 s
    assert not guard.flooding and all(n is None for n in news)


def test_a_flood_is_reported_once_loudly_and_its_end_quietly() -> None:
    guard = InboundGuard(flood_rate=300)
    news = [guard.observe(k / 5000) for k in range(5000 * 3)]  # 5,000 a second for 3 s
    started = [n for n in news if n is not None]
    assert guard.flooding
    assert len(started) == 1 and started[0][0] is True and "events a second" in started[0][1]
    guard.shed = 42
    end = [guard.observe(3.0 + k / 10) for k in range(30)]  # back to 10 a second
    quiet = [n for n in end if n is not None]
    assert not guard.flooding and quiet and quiet[0][0] is False and "42 events" in quiet[0][1]
    again = [guard.observe(6.0 + k / 5000) for k in range(5000)]
    assert [n[0] for n in again if n is not None] == [False]  # a second flood goes to the log only


def test_frame_lines_over_the_budget_are_counted_not_logged() -> None:
    log = logging.getLogger("test.frames")
    log.setLevel(logging.DEBUG)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    log.addHandler(Keep())
    log.propagate = False
    budget = FrameLogBudget(log, per_second=10)
    for k in range(50):
        budget.debug("< TEXT frame %d", k)
    budget.info("= connection is CLOSING")  # never counted against the budget
    assert [r.getMessage() for r in records][:10] == [f"< TEXT frame {k}" for k in range(10)]
    assert budget.dropped == 40
    assert records[-1].getMessage() == "= connection is CLOSING"
