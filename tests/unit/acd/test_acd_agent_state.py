"""The pure agent state machine: every allowed transition, the invalid ones, wrap-up, logout pending."""

from __future__ import annotations

import pytest

from callcore.acd.agent_state import (
    AgentStatus,
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
    Transition,
    WrapUpExpired,
    apply,
    new_agent,
    wrap_up_until,
)
from callcore.acd.model import AgentConfig, QueueConfig
from callcore.acd.router import AgentView, CallerView, route


def run(status: AgentStatus, *steps: tuple[object, float]) -> tuple[AgentStatus, list[Transition]]:
    out: list[Transition] = []
    for event, now in steps:
        status, trs = apply(status, event, now)  # type: ignore[arg-type]
        out.extend(trs)
    return status, out


def ready_agent(now: float = 0.0, **kw: object) -> AgentStatus:
    return apply(new_agent("a1", **kw), Login(), now)[0]  # type: ignore[arg-type]


def test_login_ready_or_paused() -> None:
    s, trs = apply(new_agent("a1"), Login(), 10.0)
    assert s.state == "ready" and s.idle_since == 10.0 and s.since == 10.0
    assert trs == [Transition("a1", "logged_out", "ready", "login", 10.0)]
    s, trs = apply(new_agent("a1"), Login(paused=True), 10.0)
    assert s.state == "paused" and s.pause_reason == "login"
    assert trs == [Transition("a1", "logged_out", "paused", "login", 10.0)]


def test_a_full_call_with_wrap_up() -> None:
    s, trs = run(
        ready_agent(),
        (Offered("c1"), 5.0),
        (Answered("c1"), 8.0),
        (CallEnded("c1", wrap_up_seconds=30), 100.0),
    )
    assert s.state == "wrap_up" and s.wrap_up_until == 130.0 and wrap_up_until(s) == 130.0
    assert s.calls == () and s.active_calls == 0
    assert [(t.from_state, t.to_state, t.reason, t.at, t.call_id) for t in trs] == [
        ("ready", "reserved", "offer", 5.0, "c1"),
        ("reserved", "on_call", "answered", 8.0, "c1"),
        ("on_call", "wrap_up", "call ended", 100.0, "c1"),
    ]
    early, trs = apply(s, WrapUpExpired(), 129.0)  # not yet: a stale/early timer changes nothing
    assert early == s and trs == []
    done, trs = apply(s, WrapUpExpired(), 130.0)
    assert done.state == "ready" and done.idle_since == 130.0 and done.wrap_up_until is None
    assert trs == [Transition("a1", "wrap_up", "ready", "wrap-up timeout", 130.0)]
    assert wrap_up_until(done) is None
    ended, trs = apply(s, Ready(), 110.0)  # the agent ends wrap-up early
    assert ended.state == "ready" and trs[0].reason == "wrap-up ended"
    assert apply(ended, WrapUpExpired(), 130.0) == (ended, [])  # the timer fires later: ignored


def test_no_wrap_up_goes_straight_to_ready() -> None:
    s, _ = run(ready_agent(), (Offered("c1"), 1), (Answered("c1"), 2), (CallEnded("c1"), 50))
    assert s.state == "ready" and s.idle_since == 50


def test_ring_no_answer_pauses_or_not() -> None:
    s, trs = run(ready_agent(), (Offered("c1"), 1), (RingNoAnswer("c1"), 16))
    assert s.state == "paused" and s.pause_reason == "no answer" and s.offer is None
    assert trs[-1] == Transition("a1", "reserved", "paused", "no answer", 16, "c1")
    s, trs = run(ready_agent(), (Offered("c1"), 1), (RingNoAnswer("c1", pause=False), 16))
    assert s.state == "ready" and trs[-1].reason == "no answer" and s.idle_since == 16


def test_offer_cancelled_back_to_ready() -> None:
    s, trs = run(ready_agent(), (Offered("c1"), 1), (OfferCancelled("c1", reason="caller abandoned"), 4))
    assert s.state == "ready" and s.offer is None
    assert trs[-1] == Transition("a1", "reserved", "ready", "caller abandoned", 4, "c1")


def test_pause_and_resume() -> None:
    s, trs = run(ready_agent(), (Pause("lunch"), 10), (Pause("meeting"), 20), (Ready(), 30))
    assert s.state == "ready" and s.pause_reason is None and s.idle_since == 30
    assert [(t.to_state, t.reason) for t in trs] == [("paused", "lunch"), ("paused", "meeting"), ("ready", "ready")]
    s, _ = run(ready_agent(), (Offered("c"), 1), (Answered("c"), 2), (CallEnded("c", 60), 3), (Pause("toilet"), 4))
    assert s.state == "paused" and s.wrap_up_until is None and wrap_up_until(s) is None


@pytest.mark.parametrize(
    ("setup", "event", "message"),
    [
        ([], Login(), "already logged in"),
        ([], Ready(), "already ready"),
        ([], Answered("c1"), "no offer is ringing"),
        ([], CallEnded("c1"), "not one of its calls"),
        ([], Pause(""), "needs a reason"),
        ([Offered("c1")], Offered("c2"), "ready agents only"),
        ([Offered("c1")], Pause("x"), "only a ready agent"),
        ([Offered("c1")], Answered("c2"), "the ringing offer is call 'c1'"),
        ([Offered("c1")], Ready(), "only a paused agent"),
        ([Offered("c1"), Answered("c1")], Pause("x"), "only a ready agent"),
        ([Offered("c1"), Answered("c1")], Offered("c2"), "ready agents only"),
        ([Offered("c1"), Answered("c1")], RingNoAnswer("c1"), "no offer is ringing"),
        ([Pause("x")], Offered("c1"), "ready agents only"),
        ([Offered("c1"), Answered("c1"), CallEnded("c1", 30)], Offered("c2"), "ready agents only"),
        ([Offered("c1"), Answered("c1"), Logout()], Logout(), "already pending"),
        ([Logout()], Logout(), "not logged in"),
        ([Logout()], Pause("x"), "only a ready agent"),
        ([Logout()], Offered("c1"), "ready agents only"),
    ],
)
def test_invalid_transitions(setup: list[object], event: object, message: str) -> None:
    s, _ = run(ready_agent(), *((e, 1.0) for e in setup))
    with pytest.raises(InvalidTransition, match=message) as info:
        apply(s, event, 2.0)  # type: ignore[arg-type]
    assert info.value.agent_id == "a1" and info.value.state.startswith(s.state)
    assert str(info.value).startswith("agent 'a1' is ")


def test_not_an_event() -> None:
    with pytest.raises(TypeError):
        apply(ready_agent(), "login", 0.0)  # type: ignore[arg-type]


def test_logout_immediate_from_ready_paused_wrap_up() -> None:
    for setup in ([], [Pause("x")], [Offered("c"), Answered("c"), CallEnded("c", 30)]):
        s, trs = run(ready_agent(), *((e, 1.0) for e in setup), (Logout(), 5.0))
        assert s.state == "logged_out" and trs[-1].to_state == "logged_out" and trs[-1].reason == "logout"
        assert s.wrap_up_until is None and s.pause_reason is None


def test_logout_pending_on_a_call() -> None:
    s, trs = run(ready_agent(), (Offered("c1"), 1), (Answered("c1"), 2), (Logout(), 10))
    assert s.state == "on_call" and s.logout_pending
    assert trs[-1] == Transition("a1", "on_call", "on_call", "logout pending", 10)
    s, trs = apply(s, CallEnded("c1", wrap_up_seconds=30), 50)
    assert s.state == "logged_out" and not s.logout_pending and s.calls == ()
    assert trs == [Transition("a1", "on_call", "logged_out", "logout", 50, "c1")]


def test_logout_pending_while_ringing() -> None:
    s, _ = run(ready_agent(), (Offered("c1"), 1), (Logout(), 2))
    assert s.state == "reserved" and s.logout_pending
    gone, trs = apply(s, RingNoAnswer("c1"), 16)
    assert gone.state == "logged_out" and trs[-1].reason == "logout"
    gone, _ = apply(s, OfferCancelled("c1"), 5)
    assert gone.state == "logged_out"
    answered, _ = apply(s, Answered("c1"), 5)
    assert answered.state == "on_call" and answered.logout_pending
    assert apply(answered, CallEnded("c1"), 9)[0].state == "logged_out"


def test_wrap_up_is_respected_across_queues() -> None:
    """An agent in wrap-up after a sales call gets nothing from support or general either."""
    cfg = AgentConfig(endpoint="PJSIP/a1", skills={"sales": 5}, queues=["sales", "support", "general"],
                      wrap_up_seconds=None)
    queues = {"sales": QueueConfig(wrap_up_seconds=45), "support": QueueConfig(wrap_up_seconds=0),
              "general": QueueConfig()}
    s, _ = run(ready_agent(), (Offered("c1"), 1), (Answered("c1"), 2))
    s, _ = apply(s, CallEnded("c1", queues["sales"].wrap_up_for(cfg)), 100)
    assert s.state == "wrap_up" and s.wrap_up_until == 145
    callers = [CallerView(f"x-{q}", q, 0, 0.0, {}) for q in queues]
    view = s.view(cfg.skills, set(cfg.queues))
    assert route(120, callers, [view], queues) == []
    s, _ = apply(s, WrapUpExpired(), 145)
    assert [o.agent_id for o in route(150, callers, [s.view(cfg.skills, set(cfg.queues))], queues)] == ["a1"]


def test_wrap_up_for_agent_override() -> None:
    q = QueueConfig(wrap_up_seconds=30)
    assert q.wrap_up_for(None) == 30
    assert q.wrap_up_for(AgentConfig(endpoint="x", wrap_up_seconds=5)) == 5
    assert q.wrap_up_for(AgentConfig(endpoint="x", wrap_up_seconds=0)) == 0
    assert q.wrap_up_for(AgentConfig(endpoint="x")) == 30


def test_view_for_the_router() -> None:
    s = ready_agent(3.0)
    v = s.view({"sales": 5}, {"sales"})
    assert v == AgentView("a1", {"sales": 5}, frozenset({"sales"}), "ready", 3.0, 0, 1)


def test_multi_call_agent() -> None:
    s = ready_agent(0.0, max_calls=2)
    s, _ = run(s, (Offered("c1"), 1), (Answered("c1"), 2))
    assert s.state == "ready" and s.active_calls == 1  # capacity left: it can take another offer
    s, _ = run(s, (Offered("c2"), 3), (Answered("c2"), 4))
    assert s.state == "on_call" and s.calls == ("c1", "c2")
    with pytest.raises(InvalidTransition):
        apply(s, Offered("c3"), 5)
    s, trs = apply(s, CallEnded("c1", 30), 10)
    assert s.state == "ready" and s.calls == ("c2",) and trs[-1].to_state == "ready"
    s, _ = apply(s, CallEnded("c2", 30), 20)  # the last call: wrap-up
    assert s.state == "wrap_up" and s.wrap_up_until == 50


def test_multi_call_logout_pending_blocks_offers() -> None:
    s = ready_agent(0.0, max_calls=2)
    s, _ = run(s, (Offered("c1"), 1), (Answered("c1"), 2), (Logout(), 3))
    assert s.state == "ready" and s.logout_pending
    assert not s.view().available  # the router offers it nothing
    with pytest.raises(InvalidTransition, match="logout is pending"):
        apply(s, Offered("c2"), 4)
    assert apply(s, CallEnded("c1"), 5)[0].state == "logged_out"


def test_multi_call_agent_paused_with_a_call() -> None:
    s = ready_agent(0.0, max_calls=2)
    s, _ = run(s, (Offered("c1"), 1), (Answered("c1"), 2), (Pause("x"), 3), (CallEnded("c1", 30), 4))
    assert s.state == "paused" and s.calls == ()
    s, _ = apply(s, Ready(), 5)
    assert s.state == "ready"
