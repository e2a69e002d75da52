"""Properties of the pure router over random agents, callers, queues and times, for both policies:

- an agent is in at most one offer, and so is a caller;
- only ready agents with free capacity get offers, and every offer is eligible;
- the match is maximal: no caller left without an offer has an eligible agent left unused;
- the caller first in policy order that has an eligible agent gets one (priority is respected);
- deterministic: the same inputs give the same offers, also with the inputs shuffled.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from callcore.acd.model import QueueConfig
from callcore.acd.router import POLICIES, AgentView, CallerView, eligible, route

SKILLS = ["nl", "en", "sales", "tv"]
QUEUE_NAMES = ["q1", "q2", "q3"]
STATES = ["ready"] * 6 + ["logged_out", "reserved", "on_call", "wrap_up", "paused"]

levels = st.dictionaries(st.sampled_from(SKILLS), st.integers(2, 10), min_size=2, max_size=4)
times = st.floats(0, 300, allow_nan=False).map(lambda x: round(x, 1))  # ties are likely


@st.composite
def queue_cfg(draw: st.DrawFn) -> QueueConfig:
    steps: list[dict[str, Any]] = []
    after = 0.0
    for _ in range(draw(st.integers(0, 3))):
        after += draw(st.integers(1, 60))
        kind = draw(st.sampled_from(["lower", "drop", "add"]))
        if kind == "lower":
            steps.append({"after": after, "lower_levels_by": draw(st.integers(1, 5))})
        elif kind == "drop":
            steps.append({"after": after, "drop_skills": draw(st.lists(st.sampled_from(SKILLS), min_size=1, max_size=2))})
        else:
            steps.append({"after": after, "add_agents_from": draw(st.lists(st.sampled_from(QUEUE_NAMES), min_size=1, max_size=2))})
    return QueueConfig.model_validate({
        "required_skills": draw(st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5), max_size=1)),
        "priority": draw(st.integers(0, 3)),
        "weight": draw(st.sampled_from([0.5, 1.0, 2.0])),
        "relaxation": steps,
    })


@st.composite
def scenario(draw: st.DrawFn) -> tuple[float, list[CallerView], list[AgentView], dict[str, QueueConfig]]:
    queues = {name: draw(queue_cfg()) for name in QUEUE_NAMES if draw(st.booleans()) or name == "q1"}
    agent_ids = [f"a{i}" for i in range(draw(st.integers(1, 10)))]
    agents = []
    for aid in agent_ids:
        max_calls = draw(st.integers(1, 2))
        agents.append(AgentView(
            id=aid,
            skills=draw(levels),
            queues=frozenset(draw(st.lists(st.sampled_from(QUEUE_NAMES), min_size=1, max_size=3))),
            state=draw(st.sampled_from(STATES)),
            idle_since=draw(times),
            active_calls=draw(st.sampled_from([0, 0, 0, 1, max_calls])),
            max_calls=max_calls,
        ))
    callers = []
    for i in range(draw(st.integers(1, 12))):
        callers.append(CallerView(
            id=f"c{i}",
            queue=draw(st.sampled_from([*QUEUE_NAMES, "unknown"])),
            priority=draw(st.integers(0, 3)),
            enqueued_at=draw(times),
            required_skills=draw(st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 4), max_size=1)),
            offered_to=frozenset(draw(st.lists(st.sampled_from(agent_ids), max_size=2))),
        ))
    now = draw(st.floats(0, 400, allow_nan=False))
    return now, callers, agents, queues


policies = st.sampled_from(sorted(POLICIES))


@settings(max_examples=300, deadline=None)
@given(scenario(), policies)
def test_offers_are_a_valid_maximal_matching(sc: Any, policy_name: str) -> None:
    now, callers, agents, queues = sc
    policy = POLICIES[policy_name]
    offers = route(now, callers, agents, queues, policy)
    by_id_agent = {a.id: a for a in agents}
    by_id_caller = {c.id: c for c in callers}

    assert len({o.agent_id for o in offers}) == len(offers), "an agent in two offers"
    assert len({o.caller_id for o in offers}) == len(offers), "a caller in two offers"
    for o in offers:
        a, c = by_id_agent[o.agent_id], by_id_caller[o.caller_id]
        assert a.state == "ready" and a.active_calls < a.max_calls
        assert eligible(c, a, queues, now)
        assert a.id not in c.offered_to
        assert isinstance(o.score, tuple)

    used = {o.agent_id for o in offers}
    served = {o.caller_id for o in offers}
    for c in callers:
        if c.id in served:
            continue
        spare = [a.id for a in agents if a.id not in used and eligible(c, a, queues, now)]
        assert spare == [], f"caller {c.id} left waiting while {spare} could take it"

    # the first caller in policy order with any eligible agent is served
    known = [c for c in callers if c.queue in queues]
    for c in policy.caller_order(known, queues, now):
        if any(eligible(c, a, queues, now) for a in agents):
            assert c.id in served
            break


@settings(max_examples=200, deadline=None)
@given(scenario(), policies, st.randoms(use_true_random=False))
def test_deterministic_and_order_independent(sc: Any, policy_name: str, rnd: Any) -> None:
    now, callers, agents, queues = sc
    policy = POLICIES[policy_name]
    first = route(now, callers, agents, queues, policy)
    assert route(now, callers, agents, queues, policy) == first
    shuffled_callers, shuffled_agents = list(callers), list(agents)
    rnd.shuffle(shuffled_callers)
    rnd.shuffle(shuffled_agents)
    shuffled_queues = dict(sorted(queues.items(), reverse=True))
    assert route(now, shuffled_callers, shuffled_agents, shuffled_queues, policy) == first
