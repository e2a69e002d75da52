"""The BASELINE policies (app_queue_like, naive_fifo) and callcore's router plugged into the simulator."""

from __future__ import annotations

from callcore.acd.model import RelaxationStep
from callcore.acd.router import POLICIES
from callcore.sim import (
    AgentGroup,
    AgentView,
    CallerView,
    CallType,
    Exponential,
    Scenario,
    app_queue_like,
    callcore_router,
    default_penalty,
    naive_fifo,
    queue_configs,
    simulate,
)


def caller(cid: str, queue: str, at: float, skills: dict[str, int] | None = None, priority: int = 0) -> CallerView:
    return CallerView(cid, queue, priority, at, skills if skills is not None else {queue: 1})


def agent(aid: str, skills: dict[str, int], idle_since: float = 0.0, queues: set[str] | None = None) -> AgentView:
    return AgentView(aid, skills, frozenset(queues if queues is not None else skills), "ready", idle_since)


# ---------------------------------------------------------------------------------------------- naive_fifo


def test_naive_fifo_is_global_fifo_to_the_longest_idle_skilled_agent() -> None:
    callers = [caller("c2", "en", 5.0), caller("c1", "nl", 1.0), caller("c3", "nl", 9.0)]
    agents = [agent("a", {"nl": 3}, idle_since=50), agent("b", {"nl": 9, "en": 9}, idle_since=10)]
    # c1 (oldest) takes the longest idle agent b, whatever the levels; c2 (en) then finds nobody; c3 gets a
    assert naive_fifo(100.0, callers, agents) == [("c1", "b"), ("c3", "a")]


def test_naive_fifo_never_offers_without_the_skill() -> None:
    assert naive_fifo(0.0, [caller("c1", "en", 0.0)], [agent("a", {"nl": 9})]) == []


# ------------------------------------------------------------------------------------------ app_queue_like


def test_penalty_tiers() -> None:
    assert [default_penalty(lv) for lv in (10, 8, 7, 5, 4, 1)] == [0, 0, 1, 1, 2, 2]


def test_app_queue_lower_penalty_first_then_leastrecent() -> None:
    router = app_queue_like()
    agents = [
        agent("low", {"q": 4}, idle_since=0.0),  # idle longest, but penalty 2
        agent("mid-old", {"q": 6}, idle_since=10.0),
        agent("mid-new", {"q": 7}, idle_since=20.0),
    ]
    assert router(100.0, [caller("c1", "q", 50.0)], agents) == [("c1", "mid-old")]
    assert router(100.0, [caller("c1", "q", 50.0), caller("c2", "q", 60.0), caller("c3", "q", 70.0)], agents) == [
        ("c1", "mid-old"),
        ("c2", "mid-new"),
        ("c3", "low"),
    ]


def test_app_queue_priority_then_arrival_within_a_queue() -> None:
    router = app_queue_like()
    callers = [caller("old", "q", 1.0), caller("vip", "q", 5.0, priority=2)]
    assert router(10.0, callers, [agent("a", {"q": 9})]) == [("vip", "a")]


def test_app_queue_only_members_of_the_callers_queue() -> None:
    router = app_queue_like()
    # the agent has the skill but is not a member of queue q
    outsider = agent("a", {"q": 9, "r": 9}, queues={"r"})
    assert router(0.0, [caller("c1", "q", 0.0)], [outsider]) == []


def test_app_queue_is_deterministic() -> None:
    callers = [caller(f"c{i}", q, float(i)) for i, q in enumerate(["a", "b", "c", "a", "b"])]
    agents = [agent(f"x{i}", {"a": 9, "b": 9, "c": 9}, idle_since=float(i)) for i in range(3)]
    first = app_queue_like(seed=3)(42.0, callers, agents)
    assert first == app_queue_like(seed=3)(42.0, list(reversed(callers)), agents)
    assert len(first) == 3 and len({a for _, a in first}) == 3


def test_app_queue_queues_race_so_the_oldest_caller_can_lose() -> None:
    """Unlike a global FIFO, app_queue's queues do not coordinate: over many instants the single free agent
    sometimes goes to the newer caller of the other queue."""
    callers = [caller("old", "a", 0.0), caller("new", "b", 50.0)]
    agents = [agent("x", {"a": 9, "b": 9})]
    router = app_queue_like()
    winners = {router(float(t), callers, agents)[0][0] for t in range(100, 140)}
    assert winners == {"old", "new"}
    assert naive_fifo(100.0, callers, agents) == [("old", "x")]


# ------------------------------------------------------------------------------------------- in the engine


def center() -> Scenario:
    cts = (
        CallType("nl", 150, Exponential(240), patience=Exponential(120)),
        CallType("en", 40, Exponential(300), patience=Exponential(120)),
    )
    groups = (AgentGroup("nl", 11, {"nl": 9}), AgentGroup("both", 4, {"nl": 5, "en": 9}), AgentGroup("en", 1, {"en": 9}))
    return Scenario(cts, groups, horizon_seconds=8 * 3600.0)


def test_every_policy_respects_skills_in_a_full_run() -> None:
    sc = center()
    qs = queue_configs(sc)
    routers = [naive_fifo, app_queue_like()] + [callcore_router(qs, p) for p in POLICIES.values()]
    for router in routers:
        r = simulate(sc, router, seed=11)  # the engine raises RouterError on an unskilled offer
        assert r.overall.answered > 0.9 * r.overall.offered


def test_callcore_router_plugs_in_and_keeps_bilingual_agents_for_the_small_queue() -> None:
    sc = center()
    qs = queue_configs(sc)
    assert set(qs) == {"nl", "en"} and qs["nl"].required_skills == {"nl": 1}
    naive = simulate(sc, naive_fifo, seed=2)
    for policy in ("longest_wait", "most_skilled"):
        result = simulate(sc, callcore_router(qs, POLICIES[policy]), seed=2)
        # keeping the bilingual agents for English (their level-9 skill) serves the small English queue better
        assert result.per_type["en"].service_level > naive.per_type["en"].service_level, policy


def test_relaxation_wakes_the_router_up() -> None:
    """A queue that asks for level 9 and relaxes to 5 after 10 s: the 'both' agents (nl level 5) take Dutch
    callers only once they have waited 10 s, even when nothing else happens at that moment."""
    sc = Scenario(
        (CallType("nl", 15, Exponential(200)),),
        (AgentGroup("both", 3, {"nl": 5, "en": 9}),),
        horizon_seconds=8 * 3600.0,
    )
    qs = {q: c.model_copy(update={"required_skills": {"nl": 9},
                                  "relaxation": [RelaxationStep(after=10, lower_levels_by=4)]})
          for q, c in queue_configs(sc).items()}
    r = simulate(sc, callcore_router(qs), seed=1).overall
    assert r.answered == r.offered > 0
    # nobody is answered before 10 s, and (agents being free most of the time) most exactly at 10 s
    assert r.asa >= 10.0
    assert r.answered_within_target > 0.8 * r.answered
    no_wake = simulate(sc, callcore_router(qs), seed=1, wakeup=lambda now, callers: None).overall
    assert no_wake.asa > r.asa
