"""The in-memory sliding-window rate limiter (callcore.api.ratelimit)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcore.api.ratelimit import SlidingWindowLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_at_most_limit_hits_per_window_with_an_exact_retry_after():
    clock = Clock()
    lim = SlidingWindowLimiter(3, 60, clock=clock)
    assert [lim.acquire("k").remaining for _ in range(3)] == [2, 1, 0]
    clock.t += 10
    v = lim.acquire("k")
    assert not v.allowed and v.remaining == 0 and v.retry_after == pytest.approx(50.0) and v.stamp is None
    assert v.retry_after_header == "50"
    assert lim.acquire("other").allowed  # keys are independent
    clock.t += 50  # the first three leave the window together
    assert lim.acquire("k").allowed


def test_the_window_slides_rather_than_resetting_on_a_boundary():
    clock = Clock()
    lim = SlidingWindowLimiter(2, 60, clock=clock)
    lim.acquire("k")
    clock.t += 59
    lim.acquire("k")
    assert not lim.acquire("k").allowed
    clock.t += 1  # the first hit is out: one more fits, not two (a fixed window would allow 2 here)
    assert lim.acquire("k").allowed
    v = lim.acquire("k")
    assert not v.allowed and v.retry_after == pytest.approx(59.0)


def test_refused_attempts_are_not_recorded_and_peek_records_nothing():
    clock = Clock()
    lim = SlidingWindowLimiter(1, 10, clock=clock)
    assert lim.peek("k").allowed and lim.peek("k").remaining == 1
    lim.acquire("k")
    for _ in range(100):
        clock.t += 0.01
        assert not lim.acquire("k").allowed
    clock.t = 110.0
    assert lim.acquire("k").allowed  # hammering did not extend the block


def test_release_gives_the_slot_back():
    clock = Clock()
    lim = SlidingWindowLimiter(2, 60, clock=clock)
    a = lim.acquire("k")
    clock.t += 1
    b = lim.acquire("k")
    assert not lim.peek("k").allowed
    lim.release("k", a)
    assert lim.peek("k").allowed
    lim.release("k", a)  # twice: nothing more happens
    lim.release("k", lim.acquire("k"))
    lim.release("k", b)
    assert len(lim) == 0
    lim.release("k", b)  # an unknown key: nothing happens
    refused = SlidingWindowLimiter(1, 1, clock=clock)
    refused.acquire("x")
    refused.release("x", refused.acquire("x"))  # a refused verdict has no stamp: nothing is released
    assert not refused.peek("x").allowed


def test_keys_are_capped_and_idle_keys_go_first():
    clock = Clock()
    lim = SlidingWindowLimiter(1, 60, clock=clock, max_keys=3)
    for k in ("a", "b", "c"):
        lim.acquire(k)
        clock.t += 1
    lim.acquire("d")  # "a" was hit longest ago: forgotten
    assert len(lim) == 3
    assert lim.acquire("a").allowed  # ... so it may again ("b" goes now)
    assert not lim.acquire("d").allowed and not lim.acquire("c").allowed
    clock.t += 120
    assert lim.peek("c").allowed and len(lim) == 2  # expired keys are dropped when looked at
    lim.reset()
    assert len(lim) == 0


def test_bad_parameters():
    with pytest.raises(ValueError):
        SlidingWindowLimiter(0, 10)
    with pytest.raises(ValueError):
        SlidingWindowLimiter(1, 0)


@settings(max_examples=200, deadline=None)
@given(limit=st.integers(1, 5), window=st.floats(1, 100),
       gaps=st.lists(st.floats(0, 50, allow_nan=False), min_size=1, max_size=60))
def test_no_window_ever_holds_more_than_limit_accepted_hits(limit, window, gaps):
    clock = Clock()
    lim = SlidingWindowLimiter(limit, window, clock=clock)
    accepted: list[float] = []
    for gap in gaps:
        clock.t += gap
        v = lim.acquire("k")
        in_window = [t for t in accepted if t > clock.t - window]
        assert v.allowed == (len(in_window) < limit)
        if v.allowed:
            accepted.append(clock.t)
        else:
            assert 0 <= v.retry_after <= window + 1e-9
            assert len([t for t in accepted if t > clock.t + v.retry_after - window + 1e-9]) < limit
