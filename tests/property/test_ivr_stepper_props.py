"""Properties of the pure stepper over random small flows and random (well-typed) results.

- it never raises when fed a result of the kind its command asks for;
- with timeouts/failures only, an acyclic flow ends within a small bound, and any flow ends (visit guard);
- it is deterministic: the same inputs give the same steps.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcore.ivr.commands import (
    TERMINAL,
    CallbackChecked,
    CheckCallback,
    Collect,
    Collected,
    Finished,
    Lookup,
    LookupDone,
    Play,
    Played,
    Record,
    Recorded,
    Result,
)
from callcore.ivr.model import IvrConfig
from callcore.ivr.stepper import MAX_VISITS, FlowContext, Step, resume, start

DTMF = "0123456789*#"
KINDS = ["play", "menu", "collect", "lookup", "branch", "hours", "set", "record", "callback"]
TERMINALS = ["queue", "transfer", "hangup"]
VALUES = ["gold", "silver", "1", "42", ""]
SCHEDULE = {"timezone": "Europe/Amsterdam", "weekly": {"mon": ["08:00-18:00"], "sun": ["02:00-03:00"]},
            "holidays": ["2026-12-25"]}

nows = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(timezone.utc)
)


@st.composite
def node_spec(draw: st.DrawFn, kind: str, target: st.SearchStrategy[str]) -> dict[str, Any]:
    retries = draw(st.integers(1, 3))
    if kind == "play":
        sounds = draw(st.lists(st.sampled_from(["a/b", "digits:${x}", "number:${x}", "date:${d}"]), min_size=1, max_size=3))
        return {"type": "play", "sounds": sounds, "interruptible": draw(st.booleans()), "next": draw(target)}
    if kind == "menu":
        keys = draw(st.lists(st.sampled_from(DTMF), min_size=1, max_size=3, unique=True))
        return {"type": "menu", "prompt": ["m"], "options": {k: draw(target) for k in keys}, "retries": retries,
                "timeout_prompt": ["t"], "invalid_prompt": ["i"], "on_failure": draw(target)}
    if kind == "collect":
        lo = draw(st.integers(0, 3))
        return {"type": "collect", "variable": "x", "min_digits": lo, "max_digits": lo + draw(st.integers(0, 3)) or 1,
                "pattern": draw(st.sampled_from([None, "^[0-9]+$", "^1"])), "retries": retries,
                "confirm": draw(st.booleans()), "confirm_prompt": ["c"], "next": draw(target),
                "on_failure": draw(target)}
    if kind == "lookup":
        return {"type": "lookup", "url": "http://h/${x}", "params": {"x": "${x}"},
                "map": {"segment": "segment", "x": "a.b"}, "next": draw(target), "on_error": draw(target)}
    if kind == "branch":
        rules = draw(st.lists(st.sampled_from([
            {"variable": "segment", "equals": "gold"},
            {"variable": "x", "in": ["1", "42"]},
            {"variable": "x", "matches": "^4"},
            {"caller_number": "^\\+31"},
            {"did": "^0800"},
            {"time": "12:00-13:00", "schedule": "s"},
            {"time": "00:00-12:00"},
        ]), max_size=3))
        return {"type": "branch", "rules": [{**r, "next": draw(target)} for r in rules], "default": draw(target)}
    if kind == "hours":
        return {"type": "hours", "schedule": "s", "open": draw(target), "closed": draw(target),
                "holiday": draw(st.one_of(st.none(), target))}
    if kind == "set":
        return {"type": "set", "variables": {"x": draw(st.sampled_from(VALUES + ["${x}1"]))}, "next": draw(target)}
    if kind == "record":
        return {"type": "record", "prompt": draw(st.sampled_from([[], ["r"]])), "next": draw(target)}
    if kind == "callback":
        return {"type": "callback", "queue": "q", "prompt": draw(st.sampled_from([[], ["cb"]])), "next": draw(target)}
    if kind == "queue":
        return {"type": "queue", "queue": "q", "priority": draw(st.sampled_from(["0", "${x}", "7"])),
                "skills": ["${segment}", "s"]}
    if kind == "transfer":
        return {"type": "transfer", "number": draw(st.sampled_from(["+31", "${x}"])), "caller_id": "${did}"}
    return {"type": "hangup", "sounds": ["bye"]}


@st.composite
def flows(draw: st.DrawFn, acyclic: bool) -> IvrConfig:
    n = draw(st.integers(2, 7))
    names = [f"n{i}" for i in range(n)]
    nodes: dict[str, Any] = {}
    for i, name in enumerate(names):
        last = i == n - 1
        kind = draw(st.sampled_from(TERMINALS if last else KINDS + TERMINALS))
        pool = names[i + 1 :] if acyclic else names
        nodes[name] = draw(node_spec(kind, st.sampled_from(pool or names)))
    return IvrConfig.model_validate({"flows": {"f": {"start": "n0", "nodes": nodes}}, "schedules": {"s": SCHEDULE}})


def any_result(command: Any) -> st.SearchStrategy[Result]:
    if isinstance(command, Play):
        return st.builds(Played, st.one_of(st.none(), st.sampled_from(DTMF)))
    if isinstance(command, Collect):
        return st.builds(
            Collected, st.text(DTMF, max_size=command.max_digits), st.booleans(), st.booleans()
        )
    if isinstance(command, Lookup):
        data = st.fixed_dictionaries({}, optional={
            "segment": st.one_of(st.sampled_from(VALUES), st.integers(), st.none(), st.booleans()),
            "a": st.one_of(st.integers(), st.dictionaries(st.sampled_from(["b", "c"]), st.one_of(st.integers(), st.text(max_size=3)))),
        })
        return st.builds(LookupDone, st.booleans(), st.one_of(st.none(), st.integers(100, 599)),
                         st.one_of(st.none(), data), st.floats(0, 5000), st.one_of(st.none(), st.just("timeout")))
    if isinstance(command, Record):
        return st.builds(Recorded, st.just(command.name), st.booleans(), st.one_of(st.none(), st.floats(0, 60)))
    if isinstance(command, CheckCallback):
        return st.builds(CallbackChecked, st.booleans(), st.just(command.number),
                         st.one_of(st.none(), st.just("number_on_dnc")), st.one_of(st.none(), st.just("refused")))
    return st.builds(Finished, st.just("queued"))


def failing_result(command: Any) -> Result:
    if isinstance(command, Play):
        return Played()
    if isinstance(command, Collect):
        return Collected("", timed_out=True)
    if isinstance(command, Lookup):
        return LookupDone(False, None, None, 2000.0, "timeout")
    if isinstance(command, Record):
        return Recorded(command.name, False)
    if isinstance(command, CheckCallback):
        return CallbackChecked(False, command.number, "destination_not_allowed", "refused")
    return Finished("hung_up")


def ctx_for(now: datetime, caller: str = "+31612345678", did: str = "08001234") -> FlowContext:
    return FlowContext("call-1", did, caller, now)


def check_step(step: Step) -> None:
    if step.state.done:
        assert step.command is None and step.events == []
    elif step.state.ended:
        assert isinstance(step.command, TERMINAL)
        assert step.events[-1].type == "ivr_ended"
        assert step.state.outcome in ("queue", "transfer", "hangup", "error")
    else:
        assert step.command is not None and not isinstance(step.command, TERMINAL)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flows(acyclic=False), nows, st.data())
def test_never_raises_on_well_typed_results(cfg: IvrConfig, now: datetime, data: st.DataObject) -> None:
    flow = cfg.flows["f"]
    step = start(flow, cfg, ctx_for(now), {"d": "2026-12-25"})
    check_step(step)
    for i in range(60):
        if step.state.done:
            break
        result = data.draw(any_result(step.command))
        step = resume(flow, cfg, step.state, result, ctx_for(now + timedelta(seconds=i)))
        check_step(step)


@settings(max_examples=300, deadline=None)
@given(flows(acyclic=True), nows)
def test_acyclic_flow_ends_quickly_on_timeouts(cfg: IvrConfig, now: datetime) -> None:
    flow = cfg.flows["f"]
    step = start(flow, cfg, ctx_for(now))
    # Each node: at most `retries` (≤ 3) commands; 7 nodes; + Finished.
    for _ in range(7 * 3 + 1):
        if step.state.done:
            break
        step = resume(flow, cfg, step.state, failing_result(step.command), ctx_for(now))
    assert step.state.done
    assert step.state.outcome in ("queue", "transfer", "hangup", "error")  # error: e.g. empty transfer number


@settings(max_examples=40, deadline=None)
@given(flows(acyclic=False), nows)
def test_any_flow_ends_on_timeouts(cfg: IvrConfig, now: datetime) -> None:
    flow = cfg.flows["f"]
    step = start(flow, cfg, ctx_for(now))
    steps = 0
    while not step.state.done:
        step = resume(flow, cfg, step.state, failing_result(step.command), ctx_for(now))
        steps += 1
        assert steps <= MAX_VISITS * 3 + 1  # ≤ 3 attempts per visit, + Finished
    assert step.state.visits <= MAX_VISITS + 1


@settings(max_examples=200, deadline=None)
@given(flows(acyclic=False), nows, st.data())
def test_deterministic(cfg: IvrConfig, now: datetime, data: st.DataObject) -> None:
    flow = cfg.flows["f"]
    # A second, independently built copy of the same config must behave identically.
    twin = IvrConfig.model_validate(cfg.model_dump(by_alias=True))
    a = start(flow, cfg, ctx_for(now))
    b = start(twin.flows["f"], twin, ctx_for(now))
    assert a == b
    for _ in range(30):
        if a.state.done:
            break
        result = data.draw(any_result(a.command))
        a = resume(flow, cfg, a.state, result, ctx_for(now))
        b = resume(twin.flows["f"], twin, b.state, result, ctx_for(now))
        assert a == b
