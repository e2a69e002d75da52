"""The pure router: eligibility, relaxation, both policies' orderings, the greedy match."""

from __future__ import annotations

from typing import Any

import pytest

from callcore.acd.model import QueueConfig
from callcore.acd.policies import MostSkilledPolicy
from callcore.acd.router import (
    DEFAULT_POLICY,
    AgentView,
    CallerView,
    effective_requirements,
    eligible,
    max_wait_reached,
    next_relaxation_at,
    only_offered_left,
    queue_full,
    route,
)


def agent(aid: str, skills: dict[str, int] | None = None, queues: tuple[str, ...] = ("support",), **kw: Any) -> AgentView:
    kw.setdefault("state", "ready")
    kw.setdefault("idle_since", 0.0)
    return AgentView(id=aid, skills=skills or {}, queues=frozenset(queues), **kw)


def caller(cid: str, queue: str = "support", enqueued_at: float = 0.0, priority: int = 0, **kw: Any) -> CallerView:
    kw.setdefault("required_skills", {})
    return CallerView(id=cid, queue=queue, priority=priority, enqueued_at=enqueued_at, **kw)


def queue(**kw: Any) -> QueueConfig:
    return QueueConfig.model_validate(kw)


SUPPORT = queue(
    required_skills={"language:nl": 5, "internet": 3},
    relaxation=[
        {"after": 30, "lower_levels_by": 3},
        {"after": 60, "drop_skills": ["internet"]},
        {"after": 90, "add_agents_from": ["general"]},
    ],
)
QUEUES = {"support": SUPPORT, "general": queue(), "sales": queue()}
NL_NET = {"language:nl": 5, "internet": 3}


def pairs(offers: list) -> list[tuple[str, str]]:
    return [(o.caller_id, o.agent_id) for o in offers]


# ---- eligibility -------------------------------------------------------------------------------------------------


def test_skills_and_levels() -> None:
    c = caller("c1")
    assert eligible(c, agent("a", NL_NET), QUEUES, 0)
    assert eligible(c, agent("a", {"language:nl": 10, "internet": 9, "tv": 1}), QUEUES, 0)
    assert not eligible(c, agent("a", {"language:nl": 4, "internet": 3}), QUEUES, 0)  # level too low
    assert not eligible(c, agent("a", {"language:nl": 5}), QUEUES, 0)  # skill missing


def test_caller_requirements_merge_with_the_queue() -> None:
    c = caller("c1", required_skills={"language:nl": 8, "tv": 1})
    assert effective_requirements(c, SUPPORT, 0) == ({"language:nl": 8, "internet": 3, "tv": 1}, frozenset())
    assert not eligible(c, agent("a", NL_NET), QUEUES, 0)
    assert eligible(c, agent("a", {"language:nl": 8, "internet": 3, "tv": 1}), QUEUES, 0)


def test_queue_membership() -> None:
    assert not eligible(caller("c1"), agent("a", NL_NET, queues=("sales",)), QUEUES, 0)
    assert not eligible(caller("c1", queue="nope"), agent("a", NL_NET, queues=("nope",)), QUEUES, 0)


@pytest.mark.parametrize("state", ["logged_out", "reserved", "on_call", "wrap_up", "paused"])
def test_only_ready_agents(state: str) -> None:
    assert not eligible(caller("c1"), agent("a", NL_NET, state=state), QUEUES, 0)


def test_max_calls() -> None:
    c = caller("c1")
    assert not eligible(c, agent("a", NL_NET, active_calls=1, max_calls=1), QUEUES, 0)
    assert eligible(c, agent("a", NL_NET, active_calls=1, max_calls=2), QUEUES, 0)


def test_offered_to_is_skipped() -> None:
    c = caller("c1", offered_to=frozenset({"a"}))
    a, b = agent("a", NL_NET), agent("b", NL_NET, idle_since=50)
    assert not eligible(c, a, QUEUES, 0)
    assert pairs(route(100, [c], [a, b], QUEUES)) == [("c1", "b")]  # a idles longer but already rang out
    assert route(100, [c], [a], QUEUES) == []  # skipped even when it is the only one
    assert only_offered_left(c, [a], QUEUES, 100)
    assert not only_offered_left(c, [a, b], QUEUES, 100)
    assert not only_offered_left(c, [agent("x", {})], QUEUES, 100)  # x could never take it: no new round helps


# ---- relaxation -------------------------------------------------------------------------------------------------


def test_relaxation_steps_apply_at_their_wait() -> None:
    c = caller("c1", enqueued_at=100.0)
    assert effective_requirements(c, SUPPORT, 129.9) == ({"language:nl": 5, "internet": 3}, frozenset())
    assert effective_requirements(c, SUPPORT, 130.0) == ({"language:nl": 2, "internet": 1}, frozenset())
    assert effective_requirements(c, SUPPORT, 160.0) == ({"language:nl": 2}, frozenset())
    assert effective_requirements(c, SUPPORT, 190.0) == ({"language:nl": 2}, frozenset({"general"}))
    # before the enqueue time (clock skew): no wait, no relaxation
    assert effective_requirements(c, SUPPORT, 50.0) == ({"language:nl": 5, "internet": 3}, frozenset())


def test_relaxation_widens_eligibility() -> None:
    c = caller("c1", enqueued_at=0.0)
    low = agent("low", {"language:nl": 2, "internet": 1})
    no_net = agent("nonet", {"language:nl": 3})
    other = agent("other", {"language:nl": 9}, queues=("general",))
    assert [eligible(c, a, QUEUES, 29) for a in (low, no_net, other)] == [False, False, False]
    assert [eligible(c, a, QUEUES, 30) for a in (low, no_net, other)] == [True, False, False]
    assert [eligible(c, a, QUEUES, 60) for a in (low, no_net, other)] == [True, True, False]
    assert [eligible(c, a, QUEUES, 90) for a in (low, no_net, other)] == [True, True, True]


def test_levels_never_drop_below_one() -> None:
    q = queue(required_skills={"x": 2}, relaxation=[{"after": 1, "lower_levels_by": 5}])
    assert effective_requirements(caller("c", queue="q"), q, 10) == ({"x": 1}, frozenset())
    assert not eligible(caller("c", queue="q"), agent("a", {}, queues=("q",)), {"q": q}, 10)


def test_relaxation_lowers_caller_requirements_too() -> None:
    c = caller("c1", required_skills={"tv": 6})
    assert effective_requirements(c, SUPPORT, 30)[0] == {"language:nl": 2, "internet": 1, "tv": 3}


def test_next_relaxation_at() -> None:
    callers = [caller("c1", enqueued_at=100.0), caller("c2", enqueued_at=110.0), caller("c3", queue="sales")]
    assert next_relaxation_at(callers, QUEUES, 120.0) == 130.0
    assert next_relaxation_at(callers, QUEUES, 130.0) == 140.0
    assert next_relaxation_at(callers, QUEUES, 200.0) is None
    assert next_relaxation_at([], QUEUES, 0.0) is None


def test_overflow_helpers() -> None:
    q = queue(max_wait=600, max_length=2)
    assert not max_wait_reached(q, 599.9) and max_wait_reached(q, 600)
    assert not max_wait_reached(queue(), 1e9)
    assert not queue_full(q, 1) and queue_full(q, 2)
    assert not queue_full(queue(), 10_000)


# ---- caller order -------------------------------------------------------------------------------------------------


def test_longest_waiting_caller_first() -> None:
    callers = [caller("late", enqueued_at=20), caller("early", enqueued_at=5)]
    assert pairs(route(100, callers, [agent("a", NL_NET)], QUEUES)) == [("early", "a")]


def test_priority_caller_jumps_the_line() -> None:
    callers = [caller("early", enqueued_at=0), caller("vip", enqueued_at=90, priority=10)]
    assert pairs(route(100, callers, [agent("a", NL_NET)], QUEUES)) == [("vip", "a")]


def test_queue_base_priority_adds_to_the_callers() -> None:
    queues = {"sales": queue(priority=5), "general": queue()}
    callers = [caller("g", queue="general", enqueued_at=0, priority=4), caller("s", queue="sales", enqueued_at=50)]
    a = agent("a", queues=("sales", "general"))
    assert pairs(route(100, callers, [a], queues)) == [("s", "a")]
    assert DEFAULT_POLICY.score(callers[1], a, queues, 100)[0] == 5  # type: ignore[attr-defined]


def test_weighted_wait_across_the_agents_queues() -> None:
    queues = {"sales": queue(weight=2.0), "general": queue(weight=1.0)}
    a = agent("a", queues=("sales", "general"))
    g = caller("g", queue="general", enqueued_at=0)  # waited 100 → 100
    s = caller("s", queue="sales", enqueued_at=60)  # waited 40 → 80
    assert pairs(route(100, [g, s], [a], queues)) == [("g", "a")]
    s2 = caller("s", queue="sales", enqueued_at=40)  # waited 60 → 120
    assert pairs(route(100, [g, s2], [a], queues)) == [("s", "a")]


def test_requeued_caller_keeps_its_place() -> None:
    # c1 rang out on agent a and was put back at the head: same enqueued_at, so it still goes first.
    c1 = caller("c1", enqueued_at=10, offered_to=frozenset({"a"}))
    c2 = caller("c2", enqueued_at=20)
    a, b = agent("a", NL_NET, idle_since=0), agent("b", NL_NET, idle_since=5)
    assert pairs(route(100, [c2, c1], [a, b], QUEUES)) == [("c1", "b"), ("c2", "a")]


def test_ties_broken_by_id() -> None:
    callers = [caller("c2"), caller("c1")]
    assert pairs(route(10, callers, [agent("b", NL_NET), agent("a", NL_NET)], QUEUES)) == [("c1", "a"), ("c2", "b")]


# ---- agent rank ---------------------------------------------------------------------------------------------------


def test_default_policy_prefers_higher_levels_then_fewer_skills_then_longest_idle() -> None:
    c = caller("c1")
    expert = agent("expert", {"language:nl": 10, "internet": 10}, idle_since=50)
    plain = agent("plain", NL_NET, idle_since=10)
    assert pairs(route(100, [c], [expert, plain], QUEUES)) == [("c1", "expert")]
    assert route(100, [c], [expert, plain], QUEUES)[0].score == (0, 100.0, 1.0, True, 50.0)
    versatile = agent("versatile", {**NL_NET, "tv": 5}, idle_since=0)
    assert pairs(route(100, [c], [versatile, plain], QUEUES)) == [("c1", "plain")]
    twin = agent("twin", NL_NET, idle_since=5)
    assert pairs(route(100, [c], [plain, twin], QUEUES)) == [("c1", "twin")]  # equals: the longest idle


def test_default_policy_prefers_full_matches_once_relaxed() -> None:
    c = caller("c1", enqueued_at=0)
    relaxed = agent("relaxed", {"language:nl": 3, "internet": 3}, idle_since=0)  # only eligible after 30 s
    full = agent("full", NL_NET, idle_since=40)
    assert pairs(route(45, [c], [relaxed, full], QUEUES)) == [("c1", "full")]
    assert pairs(route(45, [c], [relaxed], QUEUES)) == [("c1", "relaxed")]


def test_default_policy_home_agents_before_borrowed_ones() -> None:
    c = caller("c1", enqueued_at=0)
    borrowed = agent("borrowed", NL_NET, queues=("general",), idle_since=0)
    home = agent("home", NL_NET, idle_since=80)
    assert pairs(route(95, [c], [borrowed, home], QUEUES)) == [("c1", "home")]


def test_most_skilled_policy() -> None:
    c = caller("c1")
    expert = agent("expert", {"language:nl": 10, "internet": 10}, idle_since=50)
    plain = agent("plain", NL_NET, idle_since=10)
    plain2 = agent("plain2", NL_NET, idle_since=5)
    policy = MostSkilledPolicy()
    assert pairs(route(100, [c], [plain, expert, plain2], QUEUES, policy)) == [("c1", "expert")]
    assert pairs(route(100, [c], [plain, plain2], QUEUES, policy)) == [("c1", "plain2")]  # tie: longest idle
    assert route(100, [c], [expert], QUEUES, policy)[0].score == (0, 100.0, 20, 50.0)
    # only skills the caller needs count
    tv = agent("tv", {**NL_NET, "tv": 10}, idle_since=0)
    assert pairs(route(100, [c], [plain2, tv], QUEUES, policy)) == [("c1", "tv")]  # equal sums: idle decides
    assert pairs(route(100, [c], [tv, plain2], QUEUES, policy)) == [("c1", "tv")]


def test_greedy_match_over_several_callers_and_agents() -> None:
    queues = {"support": SUPPORT, "sales": queue(required_skills={"sales": 5})}
    callers = [caller("s1", queue="sales", enqueued_at=0), caller("n1", enqueued_at=5), caller("n2", enqueued_at=6)]
    agents = [
        agent("both", {**NL_NET, "sales": 9}, queues=("sales", "support"), idle_since=0),
        agent("nl", NL_NET, idle_since=1),
        agent("busy", NL_NET, state="on_call"),
    ]
    assert pairs(route(100, callers, agents, queues)) == [("s1", "both"), ("n1", "nl")]


def test_unknown_queue_callers_are_skipped_and_duplicates_rejected() -> None:
    assert route(10, [caller("x", queue="nope")], [agent("a", NL_NET)], QUEUES) == []
    assert route(10, [caller("c")], [], QUEUES) == []
    with pytest.raises(ValueError, match="duplicate caller"):
        route(10, [caller("c"), caller("c")], [agent("a")], QUEUES)
    with pytest.raises(ValueError, match="duplicate agent"):
        route(10, [caller("c")], [agent("a"), agent("a")], QUEUES)


def test_one_offer_per_agent_even_with_capacity() -> None:
    a = agent("a", NL_NET, max_calls=3)
    assert pairs(route(10, [caller("c1"), caller("c2")], [a], QUEUES)) == [("c1", "a")]


def test_estimated_wait_grows_with_position_and_shrinks_with_agents() -> None:
    from callcore.acd.router import estimated_wait

    assert estimated_wait(1, 2, 180) == 90
    assert estimated_wait(4, 2, 180) == 360
    assert estimated_wait(4, 4, 180) == 180
    assert estimated_wait(3, 0, 180) == float("inf")
