"""Properties of the agent state machine over random event sequences: every event either raises
``InvalidTransition`` (and then changes nothing) or yields a consistent status and transitions that chain."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from callcore.acd.agent_state import (
    Answered,
    CallEnded,
    InvalidTransition,
    Login,
    Logout,
    OfferCancelled,
    Offered,
    Pause,
    Ready,
    RingNoAnswer,
    WrapUpExpired,
    apply,
    new_agent,
)

CALLS = ["c1", "c2", "c3"]
events = st.one_of(
    st.builds(Login, paused=st.booleans()),
    st.just(Logout()),
    st.builds(Pause, reason=st.sampled_from(["lunch", "break"])),
    st.just(Ready()),
    st.builds(Offered, st.sampled_from(CALLS)),
    st.builds(Answered, st.sampled_from(CALLS)),
    st.builds(RingNoAnswer, st.sampled_from(CALLS), pause=st.booleans()),
    st.builds(OfferCancelled, st.sampled_from(CALLS)),
    st.builds(CallEnded, st.sampled_from(CALLS), wrap_up_seconds=st.sampled_from([0.0, 5.0, 30.0])),
    st.just(WrapUpExpired()),
)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 2), st.lists(st.tuples(events, st.floats(0, 20, allow_nan=False)), max_size=40))
def test_random_event_sequences_keep_the_status_consistent(max_calls: int, steps: list) -> None:
    status = new_agent("a", max_calls=max_calls)
    now = 0.0
    for event, dt in steps:
        now += dt
        try:
            new, transitions = apply(status, event, now)
        except InvalidTransition as exc:
            assert exc.agent_id == "a" and exc.message
            continue
        state = status.state
        for t in transitions:
            assert t.agent_id == "a" and t.at == now
            assert t.from_state == state
            state = t.to_state
        assert state == new.state
        status = new
        s = status
        assert (s.state == "reserved") == (s.offer is not None)
        assert (s.state == "wrap_up") == (s.wrap_up_until is not None)
        assert (s.state == "paused") == (s.pause_reason is not None)
        assert s.active_calls <= s.max_calls
        assert len(set(s.calls)) == len(s.calls)
        if s.state == "on_call":
            assert s.active_calls == s.max_calls
        if s.state in ("logged_out", "wrap_up"):
            assert s.calls == () and not s.logout_pending
        if s.logout_pending:
            assert s.calls or s.offer is not None
        if s.state == "ready":
            assert s.idle_since <= now
        view = s.view()
        if view.available:
            assert s.state == "ready" and not s.logout_pending
