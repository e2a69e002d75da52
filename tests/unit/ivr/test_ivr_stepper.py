"""The pure stepper: commands, state transitions and analytics events, with an injected clock."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from callcore.ivr.commands import (
    CallbackChecked,
    CheckCallback,
    Collect,
    Collected,
    Finished,
    Hangup,
    IvrEventType as E,
    Lookup,
    LookupDone,
    Play,
    Played,
    Queue,
    Record,
    Recorded,
    Transfer,
)
from callcore.ivr.model import IvrConfig
from callcore.ivr.stepper import MAX_INSTANT_CHAIN, FlowContext, IvrState, Step, resume, start

NOW = datetime(2026, 6, 1, 10, 0, tzinfo=timezone.utc)  # a Monday, 12:00 in Amsterdam
OFFICE = {
    "timezone": "Europe/Amsterdam",
    "weekly": {"mon": ["08:00-18:00"], "tue": ["08:00-18:00"], "sat": ["10:00-14:00"], "sun": ["08:00-18:00"]},
    "holidays": ["2026-12-25"],
}


def ctx(now: datetime = NOW, caller: str = "+31612345678", did: str = "1000") -> FlowContext:
    return FlowContext(call_id="c1", did=did, caller_number=caller, now=now)


def ivr(nodes: dict[str, Any], start_node: str | None = None, **flow: Any) -> IvrConfig:
    body = {"start": start_node or next(iter(nodes)), "nodes": nodes, **flow}
    return IvrConfig.model_validate({"flows": {"main": body}, "schedules": {"office": OFFICE}})


def types(step: Step) -> list[str]:
    return [e.type for e in step.events]


def events(step: Step, type_: str) -> list[dict[str, Any]]:
    return [e.data for e in step.events if e.type == type_]


class Driver:
    def __init__(self, cfg: IvrConfig, c: FlowContext | None = None, variables: dict[str, str] | None = None):
        self.cfg = cfg
        self.flow = cfg.flows["main"]
        self.ctx = c or ctx()
        self.step = start(self.flow, cfg, self.ctx, variables)

    def feed(self, result: Any, c: FlowContext | None = None) -> Step:
        self.step = resume(self.flow, self.cfg, self.step.state, result, c or self.ctx)
        return self.step


BYE = {"type": "hangup", "sounds": ["callcore/goodbye"]}
MENU = {
    "type": "menu",
    "prompt": ["callcore/main-menu"],
    "options": {"1": "sales", "2": "support"},
    "timeout": 5,
    "retries": 3,
    "timeout_prompt": ["callcore/no-input"],
    "invalid_prompt": ["callcore/invalid-option"],
    "on_failure": "bye",
}
QUEUES = {
    "sales": {"type": "queue", "queue": "sales"},
    "support": {"type": "queue", "queue": "support", "priority": 5},
    "bye": BYE,
}


# ---- menus -------------------------------------------------------------------------------------------------


def test_menu_happy_path() -> None:
    d = Driver(ivr({"menu": MENU, **QUEUES}))
    assert d.step.command == Collect(
        prompt=("sound:callcore/main-menu",), language="en", max_digits=1, terminator="",
        first_timeout=5, inter_timeout=5, barge_in=True, flush=False,
    )
    assert types(d.step) == [E.FLOW_STARTED, E.NODE_ENTERED]
    assert events(d.step, E.FLOW_STARTED) == [{"flow": "main", "language": "en", "start": "menu"}]
    assert d.step.state.phase == "menu" and not d.step.state.done
    d.feed(Collected("2", timed_out=False))
    assert d.step.command == Queue("support", 5, (), None, 30.0)
    assert d.step.state.phase == "ended" and d.step.state.ended and not d.step.state.done
    assert d.step.state.outcome == "queue"
    assert events(d.step, E.INPUT) == [{"node": "menu", "kind": "menu", "digits": "2", "valid": True}]
    assert events(d.step, E.NODE_EXITED) == [
        {"node": "menu", "kind": "menu", "outcome": "option:2", "next": "support"},
        {"node": "support", "kind": "queue", "outcome": "queue", "next": None},
    ]
    assert events(d.step, E.FLOW_ENDED) == [{"flow": "main", "outcome": "queue", "node": "support", "queue": "support"}]
    end = d.feed(Finished("queued"))
    assert end.command is None and end.state.done and end.events == []
    with pytest.raises(ValueError, match="finished"):
        d.feed(Finished("queued"))


def test_menu_timeout_then_success() -> None:
    d = Driver(ivr({"menu": MENU, **QUEUES}))
    d.feed(Collected("", timed_out=True))
    assert events(d.step, E.TIMEOUT) == [{"node": "menu", "attempt": 1}]
    assert isinstance(d.step.command, Collect)
    assert d.step.command.prompt == ("sound:callcore/no-input", "sound:callcore/main-menu")
    assert d.step.command.flush is False
    assert d.step.state.attempt == 2
    assert E.NODE_ENTERED not in types(d.step)  # a retry is not a new entry
    d.feed(Collected("1", timed_out=False))
    assert d.step.command == Queue("sales", 0, (), None, 30.0)


def test_menu_invalid_three_times_goes_to_on_failure() -> None:
    d = Driver(ivr({"menu": MENU, **QUEUES}))
    for attempt in (1, 2):
        d.feed(Collected("7", timed_out=False))
        assert events(d.step, E.INVALID) == [{"node": "menu", "digits": "7", "attempt": attempt}]
        assert events(d.step, E.INPUT) == [{"node": "menu", "kind": "menu", "digits": "7", "valid": False}]
        cmd = d.step.command
        assert isinstance(cmd, Collect) and cmd.flush is True
        assert cmd.prompt == ("sound:callcore/invalid-option", "sound:callcore/main-menu")
    d.feed(Collected("8", timed_out=False))
    assert d.step.command == Hangup(("sound:callcore/goodbye",), "en")
    assert events(d.step, E.NODE_EXITED)[0] == {
        "node": "menu", "kind": "menu", "outcome": "invalid_exhausted", "next": "bye"
    }
    assert events(d.step, E.FLOW_ENDED)[0]["outcome"] == "hangup"


def test_menu_timeouts_exhausted() -> None:
    d = Driver(ivr({"menu": {**MENU, "retries": 2}, **QUEUES}))
    d.feed(Collected("", timed_out=True))
    d.feed(Collected("", timed_out=True))
    assert events(d.step, E.NODE_EXITED)[0]["outcome"] == "timeout_exhausted"
    assert isinstance(d.step.command, Hangup)


def test_barge_in_from_play_then_menu_collect() -> None:
    cfg = ivr({
        "welcome": {"type": "play", "sounds": ["callcore/welcome"], "interruptible": True, "next": "menu"},
        "menu": MENU, **QUEUES,
    })
    d = Driver(cfg)
    assert d.step.command == Play(("sound:callcore/welcome",), "en", True)
    # The caller pressed 2 during the welcome: the runner keeps it queued; the stepper just asks for a Collect.
    d.feed(Played(digit="2"))
    assert isinstance(d.step.command, Collect) and d.step.command.flush is False
    assert events(d.step, E.NODE_EXITED) == [{"node": "welcome", "kind": "play", "outcome": "next", "next": "menu"}]
    d.feed(Collected("2", timed_out=False))
    assert isinstance(d.step.command, Queue) and d.step.command.queue == "support"


# ---- collect -------------------------------------------------------------------------------------------------

ACCOUNT = {
    "type": "collect",
    "prompt": ["callcore/enter-account"],
    "variable": "account",
    "min_digits": 6,
    "max_digits": 10,
    "first_timeout": 8,
    "inter_timeout": 4,
    "pattern": "^[0-9]{6,10}$",
    "retries": 3,
    "invalid_prompt": ["callcore/invalid"],
    "next": "done",
    "on_failure": "bye",
}
DONE = {"type": "hangup", "sounds": ["digits:${account}"]}


def test_collect_with_terminator_and_pattern() -> None:
    d = Driver(ivr({"account": ACCOUNT, "done": DONE, "bye": BYE}))
    assert d.step.command == Collect(
        prompt=("sound:callcore/enter-account",), language="en", max_digits=10, terminator="#",
        first_timeout=8, inter_timeout=4, barge_in=True, flush=False,
    )
    d.feed(Collected("12345", timed_out=False, terminated=True))  # too short
    assert events(d.step, E.INVALID) == [{"node": "account", "digits": "12345", "attempt": 1}]
    assert d.step.command.flush is True  # type: ignore[union-attr]
    d.feed(Collected("12345*7", timed_out=False, terminated=True))  # pattern mismatch
    assert events(d.step, E.INVALID)[0]["attempt"] == 2
    d.feed(Collected("1234567", timed_out=False, terminated=True))
    assert events(d.step, E.VARIABLES) == [{"account": "1234567"}]
    assert d.step.command == Hangup(("digits:1234567",), "en")
    assert d.step.state.variables == {"account": "1234567"}


def test_collect_partial_entry_on_inter_digit_timeout_is_accepted() -> None:
    d = Driver(ivr({"account": ACCOUNT, "done": DONE, "bye": BYE}))
    d.feed(Collected("123456", timed_out=True))
    assert d.step.command == Hangup(("digits:123456",), "en")


def test_collect_failures_go_to_on_failure() -> None:
    d = Driver(ivr({"account": {**ACCOUNT, "retries": 2}, "done": DONE, "bye": BYE}))
    d.feed(Collected("", timed_out=True))
    d.feed(Collected("1", timed_out=False, terminated=True))
    assert events(d.step, E.NODE_EXITED)[0]["outcome"] == "invalid_exhausted"
    assert d.step.command == Hangup(("sound:callcore/goodbye",), "en")


CONFIRMING = {
    **ACCOUNT,
    "confirm": True,
    "confirm_prompt": ["callcore/you-entered"],
    "confirm_options_prompt": ["callcore/confirm-1-2"],
}


def test_confirm_1_confirms() -> None:
    d = Driver(ivr({"account": CONFIRMING, "done": DONE, "bye": BYE}))
    d.feed(Collected("123456", timed_out=False, terminated=True))
    assert events(d.step, E.VARIABLES) == [{"account": "123456"}]
    assert d.step.state.phase == "confirm"
    assert d.step.command == Collect(
        prompt=("sound:callcore/you-entered", "digits:123456", "sound:callcore/confirm-1-2"),
        language="en", max_digits=1, terminator="", first_timeout=8, inter_timeout=4,
    )
    d.feed(Collected("1", timed_out=False))
    assert events(d.step, E.INPUT) == [{"node": "account", "kind": "collect", "digits": "1", "valid": True, "stage": "confirm"}]
    assert d.step.command == Hangup(("digits:123456",), "en")


def test_confirm_2_reenters_without_using_an_attempt() -> None:
    d = Driver(ivr({"account": {**CONFIRMING, "retries": 2}, "done": DONE, "bye": BYE}))
    d.feed(Collected("111111", timed_out=False, terminated=True))
    d.feed(Collected("2", timed_out=False))
    assert d.step.state.phase == "collect" and d.step.state.attempt == 1 and d.step.state.reentries == 1
    assert d.step.command == Collect(
        prompt=("sound:callcore/enter-account",), language="en", max_digits=10, terminator="#",
        first_timeout=8, inter_timeout=4, flush=True,
    )
    d.feed(Collected("222222", timed_out=False, terminated=True))
    assert d.step.command.prompt[1] == "digits:222222"  # type: ignore[union-attr]
    d.feed(Collected("2", timed_out=False))  # second re-entry: still allowed (retries=2)
    d.feed(Collected("333333", timed_out=False, terminated=True))
    d.feed(Collected("2", timed_out=False))  # third: capped
    assert events(d.step, E.NODE_EXITED)[0]["outcome"] == "reentry_exhausted"
    assert isinstance(d.step.command, Hangup) and d.step.command.media == ("sound:callcore/goodbye",)


def test_confirm_timeouts_then_on_failure() -> None:
    d = Driver(ivr({"account": {**CONFIRMING, "retries": 2}, "done": DONE, "bye": BYE}))
    d.feed(Collected("123456", timed_out=False, terminated=True))
    d.feed(Collected("", timed_out=True))
    assert events(d.step, E.TIMEOUT) == [{"node": "account", "attempt": 1, "stage": "confirm"}]
    assert d.step.state.confirm_attempt == 2
    d.feed(Collected("5", timed_out=False))
    assert events(d.step, E.NODE_EXITED)[0]["outcome"] == "confirm_invalid_exhausted"


# ---- lookup + branch -----------------------------------------------------------------------------------------

LOOKUP = {
    "type": "lookup",
    "url": "http://127.0.0.1:9000/customers/${account}",
    "params": {"account": "${account}", "caller": "${caller_number}", "n": 3},
    "timeout": 2.0,
    "map": {"segment": "segment", "customer_id": "id", "balance": "account.open_balance", "nothing": "x.y"},
    "next": "route",
    "on_error": "operator",
}
ROUTE = {
    "type": "branch",
    "rules": [
        {"variable": "segment", "equals": "gold", "next": "gold"},
        {"variable": "segment", "in": ["silver", "bronze"], "next": "normal"},
        {"variable": "account", "matches": "^99", "next": "operator"},
        {"caller_number": "^\\+316", "next": "mobile"},
        {"did": "^0800", "next": "operator"},
        {"time": "12:00-13:30", "schedule": "office", "next": "lunch"},
    ],
    "default": "normal",
}
TARGETS = {
    "gold": {"type": "queue", "queue": "gold"},
    "normal": {"type": "queue", "queue": "normal"},
    "mobile": {"type": "queue", "queue": "mobile"},
    "lunch": {"type": "queue", "queue": "lunch"},
    "operator": {"type": "transfer", "number": "+31201234567", "caller_id": "${did}"},
}


def test_lookup_ok_maps_and_branches_on_gold() -> None:
    d = Driver(ivr({"lookup": LOOKUP, "route": ROUTE, **TARGETS}), variables={"account": "12 34"})
    assert d.step.command == Lookup(
        "GET", "http://127.0.0.1:9000/customers/12%2034",
        {"account": "12 34", "caller": "+31612345678", "n": "3"}, 2.0,
    )
    d.feed(LookupDone(True, 200, {"segment": "gold", "id": 42, "account": {"open_balance": 12.5}}, 31.0))
    assert events(d.step, E.LOOKUP) == [
        {"node": "lookup", "ok": True, "status": 200, "latency_ms": 31.0, "error": None}
    ]
    assert events(d.step, E.VARIABLES) == [{"segment": "gold", "customer_id": "42", "balance": "12.5"}]
    assert "nothing" not in d.step.state.variables
    exits = events(d.step, E.NODE_EXITED)
    assert exits[0]["outcome"] == "ok" and exits[1] == {
        "node": "route", "kind": "branch", "outcome": "rule:0", "next": "gold"
    }
    assert d.step.command == Queue("gold", 0, (), None, 30.0)


def test_lookup_timeout_goes_to_on_error() -> None:
    d = Driver(ivr({"lookup": LOOKUP, "route": ROUTE, **TARGETS}), c=ctx(did="0201234"))
    d.feed(LookupDone(False, None, None, 2000.0, "timeout"))
    assert events(d.step, E.LOOKUP)[0]["error"] == "timeout"
    assert events(d.step, E.NODE_EXITED)[0]["outcome"] == "error"
    assert d.step.command == Transfer("PJSIP/+31201234567@trunk", "0201234", 30.0)
    assert events(d.step, E.FLOW_ENDED)[0]["outcome"] == "transfer"


@pytest.mark.parametrize(
    ("variables", "caller", "did", "now", "expected"),
    [
        ({"segment": "bronze"}, "+3120", "1000", NOW, "normal"),
        ({"account": "991234"}, "+3120", "1000", NOW, "operator"),
        ({}, "+31612", "1000", NOW, "mobile"),
        ({}, "+3120", "08001234", NOW, "operator"),
        ({}, "+3120", "1000", datetime(2026, 6, 1, 10, 30, tzinfo=timezone.utc), "lunch"),  # 12:30 CEST
        ({}, "+3120", "1000", datetime(2026, 6, 1, 11, 30, tzinfo=timezone.utc), "normal"),  # 13:30 CEST
    ],
)
def test_branch_rules(variables: dict[str, str], caller: str, did: str, now: datetime, expected: str) -> None:
    cfg = ivr({"route": ROUTE, **TARGETS})
    step = start(cfg.flows["main"], cfg, ctx(now, caller, did), variables)
    exited = events(step, E.NODE_EXITED)[-1]
    assert exited["node"] == expected


def test_time_rule_without_schedule_uses_flow_timezone() -> None:
    cfg = ivr({"route": {"type": "branch", "rules": [{"time": "12:00-13:00", "next": "a"}], "default": "b"},
               "a": BYE, "b": BYE}, timezone="Asia/Tokyo")
    step = start(cfg.flows["main"], cfg, ctx(datetime(2026, 6, 1, 3, 30, tzinfo=timezone.utc)))  # 12:30 JST
    assert events(step, E.NODE_EXITED)[0]["outcome"] == "rule:0"


# ---- hours ---------------------------------------------------------------------------------------------------

HOURS = {"type": "hours", "schedule": "office", "open": "o", "closed": "c", "holiday": "h"}
HOURS_TARGETS = {k: {"type": "queue", "queue": k} for k in ("o", "c", "h")}


@pytest.mark.parametrize(
    ("now", "outcome"),
    [
        # 2027-03-28: spring forward in Amsterdam (a Sunday). 08:00 CEST = 06:00 UTC.
        (datetime(2027, 3, 28, 5, 59, tzinfo=timezone.utc), "closed"),
        (datetime(2027, 3, 28, 6, 0, tzinfo=timezone.utc), "open"),
        (datetime(2027, 3, 28, 15, 59, tzinfo=timezone.utc), "open"),
        (datetime(2027, 3, 28, 16, 0, tzinfo=timezone.utc), "closed"),
        # 2026-10-25: fall back (a Sunday). 08:00 CET = 07:00 UTC.
        (datetime(2026, 10, 25, 6, 59, tzinfo=timezone.utc), "closed"),
        (datetime(2026, 10, 25, 7, 0, tzinfo=timezone.utc), "open"),
        (datetime(2026, 10, 25, 16, 59, tzinfo=timezone.utc), "open"),
        (datetime(2026, 10, 25, 17, 0, tzinfo=timezone.utc), "closed"),
        (datetime(2026, 12, 25, 10, 0, tzinfo=timezone.utc), "holiday"),
    ],
)
def test_hours_node_across_dst(now: datetime, outcome: str) -> None:
    cfg = ivr({"hours": HOURS, **HOURS_TARGETS})
    step = start(cfg.flows["main"], cfg, ctx(now))
    assert events(step, E.NODE_EXITED)[0]["outcome"] == outcome
    assert step.command == Queue(outcome[0], 0, (), None, 30.0)


def test_holiday_without_holiday_branch_takes_closed() -> None:
    cfg = ivr({"hours": {**HOURS, "holiday": None}, **HOURS_TARGETS})
    step = start(cfg.flows["main"], cfg, ctx(datetime(2026, 12, 25, 10, 0, tzinfo=timezone.utc)))
    assert events(step, E.NODE_EXITED)[0] == {"node": "hours", "kind": "hours", "outcome": "holiday", "next": "c"}


# ---- set, queue, transfer, record, callback ---------------------------------------------------------------


def test_set_interpolation_and_queue_priority_from_variable() -> None:
    cfg = ivr({
        "set": {"type": "set", "variables": {"priority": 10, "skill": "language:${lang}", "who": "${caller_number}/${flow}"},
                "next": "q"},
        "q": {"type": "queue", "queue": "support", "priority": "${priority}", "skills": ["${skill}", "${none}", "billing"],
              "endpoint": "PJSIP/agent01", "ring_timeout": 20},
    })
    step = start(cfg.flows["main"], cfg, ctx(), {"lang": "nl"})
    assert events(step, E.VARIABLES) == [{"priority": "10", "skill": "language:nl", "who": "+31612345678/main"}]
    assert step.command == Queue("support", 10, ("language:nl", "billing"), "PJSIP/agent01", 20.0)
    assert step.state.variables["who"] == "+31612345678/main"


def test_bad_priority_is_zero() -> None:
    cfg = ivr({"q": {"type": "queue", "queue": "support", "priority": "${priority}"}})
    step = start(cfg.flows["main"], cfg, ctx(), {"priority": "high"})
    assert isinstance(step.command, Queue) and step.command.priority == 0


def test_transfer_endpoint_template() -> None:
    cfg = ivr({"t": {"type": "transfer", "number": "${n}", "endpoint": "PJSIP/{number}@carrier2"}})
    step = start(cfg.flows["main"], cfg, ctx(), {"n": "+3130"})
    assert step.command == Transfer("PJSIP/+3130@carrier2", None, 30.0)


def test_record() -> None:
    cfg = ivr({
        "vm": {"type": "record", "prompt": ["callcore/leave-message"], "max_seconds": 60, "variable": "vm", "next": "bye"},
        "bye": BYE,
    })
    d = Driver(cfg)
    assert d.step.command == Record(("sound:callcore/leave-message",), "en", "ivr-c1-vm", 60, True, 5)
    d.feed(Recorded("ivr-c1-vm", True, 12.5))
    assert events(d.step, E.RECORDING) == [{"node": "vm", "name": "ivr-c1-vm", "ok": True, "duration_seconds": 12.5}]
    assert events(d.step, E.VARIABLES) == [{"vm": "ivr-c1-vm"}]
    assert isinstance(d.step.command, Hangup)


def test_callback_number_is_checked_and_booked_then_the_request_recorded_then_the_prompt() -> None:
    cfg = ivr({
        "cb": {"type": "callback", "queue": "support", "prompt": ["callcore/callback-confirmed"], "next": "bye"},
        "bye": BYE,
    })
    d = Driver(cfg, variables={"account": "123456"})
    # nothing recorded before the number policy says yes and the callback is booked (with the context for the agent)
    assert d.step.command == CheckCallback("+31612345678", "support", (("account", "123456"),), "ivr:main/cb")
    assert events(d.step, E.CALLBACK_REQUESTED) == []
    d.feed(CallbackChecked(True, "+31612345678", callback_id="0193-cb"))
    assert events(d.step, E.CALLBACK_REQUESTED) == [
        {"node": "cb", "number": "+31612345678", "queue": "support", "context": {"account": "123456"},
         "callback_id": "0193-cb"}
    ]
    assert d.step.command == Play(("sound:callcore/callback-confirmed",), "en", False)
    d.feed(Played())
    assert isinstance(d.step.command, Hangup)


def test_callback_without_prompt_goes_straight_on_with_the_e164_number() -> None:
    cfg = ivr({"cb": {"type": "callback", "number": "${n}", "queue": "support", "next": "bye"}, "bye": BYE})
    step = start(cfg.flows["main"], cfg, ctx(), {"n": "020 1234567"})
    assert step.command == CheckCallback("020 1234567", "support", (("n", "020 1234567"),), "ivr:main/cb")
    step = resume(cfg.flows["main"], cfg, step.state, CallbackChecked(True, "+31201234567"), ctx())
    assert events(step, E.CALLBACK_REQUESTED)[0]["number"] == "+31201234567"
    assert isinstance(step.command, Hangup)


def test_a_refused_callback_number_records_no_request_and_tells_the_caller() -> None:
    cfg = ivr({
        "cb": {"type": "callback", "queue": "support", "prompt": ["callcore/callback-confirmed"], "next": "bye",
               "on_refused": "queue"},
        "queue": {"type": "queue", "queue": "support"},
        "bye": BYE,
    })
    d = Driver(cfg)
    d.feed(CallbackChecked(False, "+31612345678", "destination_not_allowed", "a premium-rate number"))
    assert events(d.step, E.CALLBACK_REQUESTED) == []
    assert events(d.step, E.CALLBACK_REFUSED) == [
        {"node": "cb", "number": "+31612345678", "queue": "support", "code": "destination_not_allowed",
         "reason": "a premium-rate number"}]
    assert d.step.command == Play(("sound:callcore/callback-refused",), "en", False)
    d.feed(Played())
    assert isinstance(d.step.command, Queue)  # on_refused: the caller waits for an agent instead
    assert events(d.step, E.NODE_EXITED)[0]["outcome"] == "refused"


def test_a_refused_callback_without_on_refused_goes_to_next() -> None:
    cfg = ivr({"cb": {"type": "callback", "queue": "support", "refused_prompt": [], "next": "bye"}, "bye": BYE})
    d = Driver(cfg)
    d.feed(CallbackChecked(False, "+31612345678", "number_on_dnc", "on the do-not-call list"))
    assert isinstance(d.step.command, Hangup)


def test_language_variable_overrides_language() -> None:
    cfg = ivr({"p": {"type": "play", "sounds": ["hello-world"], "next": "bye"}, "bye": BYE},
              language="nl", language_variable="lang")
    assert start(cfg.flows["main"], cfg, ctx()).command == Play(("sound:hello-world",), "nl")
    step = start(cfg.flows["main"], cfg, ctx(), {"lang": "en"})
    assert step.command == Play(("sound:hello-world",), "en")
    assert events(step, E.FLOW_STARTED)[0]["language"] == "en"


def test_play_with_empty_media_is_skipped() -> None:
    cfg = ivr({"p": {"type": "play", "sounds": ["digits:${nothing}"], "next": "bye"}, "bye": BYE})
    step = start(cfg.flows["main"], cfg, ctx())
    assert isinstance(step.command, Hangup)


# ---- runtime errors and misuse -------------------------------------------------------------------------------


def test_instant_cycle_guard_at_runtime() -> None:
    cfg = ivr({
        "a": {"type": "set", "variables": {"x": "1"}, "next": "b"},
        "b": {"type": "branch", "rules": [{"variable": "x", "equals": "1", "next": "a"}], "default": "bye"},
        "bye": BYE,
    })
    step = start(cfg.flows["main"], cfg, ctx())
    assert step.command == Hangup((), "en")
    assert step.state.ended and step.state.outcome == "error"
    ended = events(step, E.FLOW_ENDED)
    assert ended[0]["outcome"] == "error" and "in a row" in ended[0]["error"]
    assert len(events(step, E.NODE_ENTERED)) == MAX_INSTANT_CHAIN


def test_unknown_schedule_and_unknown_node_are_error_outcomes() -> None:
    cfg = ivr({"hours": {**HOURS, "schedule": "nope"}, **HOURS_TARGETS})
    step = start(cfg.flows["main"], cfg, ctx())
    assert events(step, E.FLOW_ENDED)[0]["outcome"] == "error"
    assert events(step, E.NODE_EXITED)[0]["outcome"] == "error"
    cfg = ivr({"p": {"type": "play", "sounds": ["x"], "next": "ghost"}})
    d = Driver(cfg)
    d.feed(Played())
    assert isinstance(d.step.command, Hangup) and "ghost" in events(d.step, E.FLOW_ENDED)[0]["error"]


def test_wrong_result_kind_raises_value_error() -> None:
    d = Driver(ivr({"menu": MENU, **QUEUES}))
    with pytest.raises(ValueError, match="Collected"):
        d.feed(Played())
    with pytest.raises(ValueError):
        d.feed(Finished("queued"))
    d.feed(Collected("1", timed_out=False))
    with pytest.raises(ValueError, match="Finished"):
        d.feed(Collected("1", timed_out=False))


def test_state_of_another_flow_is_rejected() -> None:
    cfg = IvrConfig.model_validate({"flows": {
        "a": {"start": "m", "nodes": {"m": MENU, **QUEUES}},
        "b": {"start": "m", "nodes": {"m": MENU, **QUEUES}},
    }})
    step = start(cfg.flows["a"], cfg, ctx())
    with pytest.raises(ValueError, match="flow"):
        resume(cfg.flows["b"], cfg, step.state, Collected("1", timed_out=False), ctx())


def test_state_is_not_mutated_and_steps_are_deterministic() -> None:
    cfg = ivr({"set": {"type": "set", "variables": {"a": "1"}, "next": "menu"}, "menu": MENU, **QUEUES})
    s1 = start(cfg.flows["main"], cfg, ctx(), {"x": "y"})
    s2 = start(cfg.flows["main"], cfg, ctx(), {"x": "y"})
    assert s1 == s2
    before = IvrState(**{f: getattr(s1.state, f) for f in s1.state.__dataclass_fields__})
    r1 = resume(cfg.flows["main"], cfg, s1.state, Collected("1", timed_out=False), ctx())
    assert s1.state == before
    assert r1 == resume(cfg.flows["main"], cfg, s1.state, Collected("1", timed_out=False), ctx())


def test_naive_now_is_refused() -> None:
    cfg = ivr({"menu": MENU, **QUEUES})
    with pytest.raises(ValueError, match="timezone-aware"):
        start(cfg.flows["main"], cfg, ctx(datetime(2026, 6, 1, 10, 0)))


def test_full_example_walkthrough() -> None:
    """The example flow of the issue, end to end: open → welcome → menu 1 → account (confirmed) → lookup."""
    cfg = IvrConfig.model_validate({
        "schedules": {"office": OFFICE},
        "flows": {"main": {
            "language": "nl", "language_variable": "lang", "start": "check_hours",
            "nodes": {
                "check_hours": {"type": "hours", "schedule": "office", "open": "welcome", "closed": "bye"},
                "welcome": {"type": "play", "sounds": ["callcore/welcome"], "next": "menu"},
                "menu": {**MENU, "options": {"1": "account", "2": "support"}},
                "account": {**CONFIRMING, "next": "lookup", "on_failure": "bye"},
                "lookup": {**LOOKUP, "next": "set_priority", "on_error": "bye"},
                "set_priority": {"type": "set", "variables": {"priority": "10", "skill": "language:nl"},
                                 "next": "gold"},
                "gold": {"type": "queue", "queue": "support", "priority": "${priority}",
                         "skills": ["${skill}", "billing"], "endpoint": "PJSIP/agent01"},
                "support": {"type": "queue", "queue": "support"},
                "bye": BYE,
            },
        }},
    })
    d = Driver(cfg)
    assert d.step.command == Play(("sound:callcore/welcome",), "nl", False)
    d.feed(Played())
    d.feed(Collected("1", timed_out=False))
    d.feed(Collected("123456", timed_out=False, terminated=True))
    d.feed(Collected("1", timed_out=False))
    assert isinstance(d.step.command, Lookup) and d.step.command.params["account"] == "123456"
    d.feed(LookupDone(True, 200, {"segment": "gold"}, 12.0))
    assert d.step.command == Queue("support", 10, ("language:nl", "billing"), "PJSIP/agent01", 30.0)
    assert d.step.state.variables == {"account": "123456", "segment": "gold", "priority": "10",
                                      "skill": "language:nl"}


def test_a_caller_adopted_after_a_restart_resumes_at_the_flows_safe_node() -> None:
    welcome = {"type": "play", "sounds": ["callcore/welcome"], "next": "menu"}
    cfg = ivr({"welcome": welcome, "menu": MENU, **QUEUES}, resume_at="menu")
    fresh = start(cfg.flows["main"], cfg, ctx())
    assert events(fresh, E.FLOW_STARTED) == [{"flow": "main", "language": "en", "start": "welcome"}]
    again = start(cfg.flows["main"], cfg, ctx(), resumed=True)
    assert events(again, E.FLOW_STARTED) == [{"flow": "main", "language": "en", "start": "menu", "resumed": True}]
    assert isinstance(again.command, Collect) and again.command.prompt == ("sound:callcore/main-menu",)
    plain = ivr({"welcome": welcome, "menu": MENU, **QUEUES})  # no resume_at: the start node
    assert events(start(plain.flows["main"], plain, ctx(), resumed=True), E.FLOW_STARTED)[0]["start"] == "welcome"
