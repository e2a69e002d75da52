"""The pure IVR stepper: (flow, state, result) → (new state, one command, analytics events).

No I/O, no clock: the runner passes ``FlowContext.now`` at every step. The same inputs always give the same
step. The runner loop is::

    step = start(flow, flows, ctx, variables)
    while not step.state.done:           # equivalently: while step.command is not None
        result = await carry_out(step.command)   # Played | Collected | LookupDone | Recorded | Finished
        step = resume(flow, flows, step.state, result, ctx)

A terminal command (Queue | Transfer | Hangup) comes with ``state.phase == "ended"`` and ``state.done`` still
False (``state.outcome`` already set); carry it out and resume with ``Finished(outcome)``: that returns a Step
with ``state.done`` True, ``command`` None and no events. ``resume`` with a result of the wrong kind for the
pending command raises ``ValueError``; so does resuming a done flow. Problems inside the flow
at runtime (unknown node or schedule, more than ``MAX_INSTANT_CHAIN`` nodes in a row without a command, more
than ``MAX_VISITS`` node visits in one call) never raise: they end the flow with ``Hangup`` and
``ivr_ended`` outcome "error".

Retry semantics (menu and collect): ``retries`` is the total number of attempts. A timeout (no digits) or
an invalid entry uses one; while attempts remain, the next Collect plays ``timeout_prompt`` /
``invalid_prompt`` first, then the prompt, and after an invalid entry it has ``flush=True``. After the last
attempt the flow goes to ``on_failure`` (outcome ``timeout_exhausted`` / ``invalid_exhausted``).

Collect confirmation (``confirm: true``): after a valid entry the variable is set, then a one-digit Collect
plays ``confirm_prompt``, the digits, ``confirm_options_prompt``. "1" → ``next``; "2" → enter again (does not
use an attempt; at most ``retries`` re-entries, then ``on_failure``, outcome ``reentry_exhausted``); anything
else or a timeout repeats the confirmation, up to ``retries`` times, then ``on_failure``
(``confirm_invalid_exhausted`` / ``confirm_timeout_exhausted``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from callcore.ivr.commands import (
    CallbackChecked,
    CheckCallback,
    Collect,
    Collected,
    Command,
    Finished,
    Hangup,
    IvrEvent,
    Lookup,
    LookupDone,
    Play,
    Played,
    Queue,
    Record,
    Recorded,
    Result,
    Transfer,
)
from callcore.ivr.commands import IvrEventType as E
from callcore.ivr.hours import in_window, is_open
from callcore.ivr.media import interpolate, resolve_media
from callcore.ivr.model import (
    BranchNode,
    CallbackNode,
    CollectNode,
    Flow,
    HangupNode,
    HoursNode,
    IvrConfig,
    LookupNode,
    MenuNode,
    PlayNode,
    QueueNode,
    RecordNode,
    Rule,
    SetNode,
    TransferNode,
)

MAX_INSTANT_CHAIN = 50  # node entries in one step without a command → runtime error
MAX_VISITS = 1000  # node entries in one call → runtime error (a caller stuck in a loop forever)

# phase → the result kind the pending command produces
_EXPECTS: dict[str, type] = {
    "play": Played,
    "menu": Collected,
    "collect": Collected,
    "confirm": Collected,
    "lookup": LookupDone,
    "record": Recorded,
    "callback_check": CallbackChecked,
    "callback": Played,
    "callback_refused": Played,
    "ended": Finished,
}
# phase → the node kind it belongs to
_PHASE_KIND = {
    "play": "play",
    "menu": "menu",
    "collect": "collect",
    "confirm": "collect",
    "lookup": "lookup",
    "record": "record",
    "callback_check": "callback",
    "callback": "callback",
    "callback_refused": "callback",
}


@dataclass(frozen=True)
class FlowContext:
    call_id: str
    did: str
    caller_number: str
    now: datetime  # timezone-aware; the runner passes the current time at each step


@dataclass(frozen=True)
class IvrState:
    """Where a call is in its flow. Treat as immutable: the stepper always returns a new state (and copies
    ``variables``)."""

    flow: str
    node: str
    attempt: int = 1  # 1-based attempt at the current menu/collect
    phase: str = ""  # play|menu|collect|confirm|lookup|record|callback_check|callback|callback_refused, ended, finished
    variables: dict[str, str] = field(default_factory=dict)  # call variables (without the built-ins)
    done: bool = False  # True after the terminal command was reported back with Finished
    confirm_attempt: int = 0  # 1-based attempt at a collect confirmation
    reentries: int = 0  # "2 = re-enter" used at the current collect
    pending: str = ""  # digits awaiting confirmation
    visits: int = 0  # node entries so far in this call
    outcome: str = ""  # once a terminal command was issued: queue|transfer|hangup|error

    @property
    def ended(self) -> bool:
        """A terminal command was issued (the IVR is over for this call, whatever ``done`` says)."""
        return self.phase in ("ended", "finished")

    @property
    def expects(self) -> type | None:
        """The result type ``resume`` accepts now (None once finished)."""
        return _EXPECTS.get(self.phase)


@dataclass(frozen=True)
class Step:
    state: IvrState
    command: Command | None  # None only after resume(..., Finished(...))
    events: list[IvrEvent]


class FlowRuntimeError(Exception):
    """Internal: aborts the current step; turned into a Hangup with outcome "error"."""


def flow_name(flow: Flow, flows: IvrConfig) -> str:
    """The key of ``flow`` in ``flows`` ("" if it is not there)."""
    if flow.name:
        return flow.name
    for name, candidate in flows.flows.items():
        if candidate is flow:
            return name
    return ""


def _check_ctx(ctx: FlowContext) -> None:
    if ctx.now.tzinfo is None or ctx.now.utcoffset() is None:
        raise ValueError("FlowContext.now must be timezone-aware")


def start(flow: Flow, flows: IvrConfig, ctx: FlowContext, variables: dict[str, str] | None = None, *,
          resumed: bool = False) -> Step:
    """Enter ``flow`` at its start node (``resumed``: a caller adopted after a restart enters at ``resume_at``):
    ``ivr_started``, then nodes until the first command."""
    _check_ctx(ctx)
    run = _Run(flow, flows, ctx, flow_name(flow, flows), dict(variables or {}), 0)
    node = (flow.resume_at or flow.start) if resumed else flow.start
    if resumed:
        run.emit(E.FLOW_STARTED, flow=run.name, language=run.language(), start=node, resumed=True)
    else:
        run.emit(E.FLOW_STARTED, flow=run.name, language=run.language(), start=node)
    return run.goto(node)


def resume(flow: Flow, flows: IvrConfig, state: IvrState, result: Result, ctx: FlowContext) -> Step:
    """Feed the result of ``state``'s pending command; returns the next step."""
    _check_ctx(ctx)
    expected = _EXPECTS.get(state.phase)
    if expected is None or state.done:
        if state.phase == "finished" or state.done:
            raise ValueError("the flow is finished: there is nothing to resume")
        raise ValueError(f"state phase {state.phase!r} is not resumable")
    if not isinstance(result, expected):
        raise ValueError(
            f"node {state.node!r} waits for a {expected.__name__} result (phase {state.phase!r}), "
            f"got {type(result).__name__}"
        )
    name = flow_name(flow, flows)
    if name and state.flow and name != state.flow:
        raise ValueError(f"the state belongs to flow {state.flow!r}, not {name!r}")
    if state.phase == "ended":
        return Step(replace(state, phase="finished", done=True, variables=dict(state.variables)), None, [])

    run = _Run(flow, flows, ctx, state.flow or name, dict(state.variables), state.visits)
    node = flow.nodes.get(state.node)
    if node is None or node.kind != _PHASE_KIND[state.phase]:
        return run.fail(state.node, f"node {state.node!r} is no longer a {_PHASE_KIND[state.phase]} node in the flow")
    try:
        if isinstance(node, MenuNode):
            return run.menu_result(state, node, result)  # type: ignore[arg-type]
        if isinstance(node, CollectNode):
            if state.phase == "confirm":
                return run.confirm_result(state, node, result)  # type: ignore[arg-type]
            return run.collect_result(state, node, result)  # type: ignore[arg-type]
        if isinstance(node, LookupNode):
            return run.lookup_result(state, node, result)  # type: ignore[arg-type]
        if isinstance(node, RecordNode):
            return run.record_result(state, node, result)  # type: ignore[arg-type]
        if isinstance(node, CallbackNode):
            if state.phase == "callback_check":
                return run.callback_result(state, node, result)  # type: ignore[arg-type]
            if state.phase == "callback_refused":
                return run.goto(run.exit(state.node, node, "refused", node.on_refused or node.next))
        # play, callback: the prompt was played
        return run.goto(run.exit(state.node, node, "next", node.next))  # type: ignore[union-attr]
    except FlowRuntimeError as exc:
        return run.fail(state.node, str(exc))


# ---- internals -----------------------------------------------------------------------------------------------


def _stringify(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False, default=str)


def dig(data: Any, path: str) -> tuple[bool, Any]:
    """Follow a dotted path (``account.open_balance``, ``items.0.id``) into decoded JSON."""
    cur = data
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return False, None
    return True, cur


class _Run:
    """One step under construction: collects events and mutates a private copy of the variables."""

    def __init__(
        self, flow: Flow, flows: IvrConfig, ctx: FlowContext, name: str, variables: dict[str, str], visits: int
    ) -> None:
        self.flow = flow
        self.flows = flows
        self.ctx = ctx
        self.name = name
        self.vars = variables
        self.visits = visits
        self.chain = 0
        self.events: list[IvrEvent] = []

    # -- helpers

    def emit(self, type_: str, **data: Any) -> None:
        self.events.append(IvrEvent(type_, data))

    def scope(self) -> dict[str, str]:
        return {**self.vars, "caller_number": self.ctx.caller_number, "did": self.ctx.did, "flow": self.name}

    def language(self) -> str:
        if self.flow.language_variable:
            value = self.vars.get(self.flow.language_variable, "").strip()
            if value:
                return value
        return self.flow.language

    def media(self, items: list[str]) -> tuple[str, ...]:
        return resolve_media(items, self.scope(), self.language())

    def text(self, template: str) -> str:
        return interpolate(template, self.scope())

    def set_vars(self, values: dict[str, str]) -> None:
        if values:
            self.vars.update(values)
            self.events.append(IvrEvent(E.VARIABLES, dict(values)))

    def state(self, node: str, phase: str, **kw: Any) -> IvrState:
        return IvrState(
            flow=self.name, node=node, phase=phase, variables=dict(self.vars), visits=self.visits, **kw
        )

    def step(self, state: IvrState, command: Command) -> Step:
        return Step(state, command, self.events)

    def exit(self, name: str, node: Any, outcome: str, next_: str | None) -> str:
        self.emit(E.NODE_EXITED, node=name, kind=node.kind, outcome=outcome, next=next_)
        return next_ or ""

    def end(self, name: str, node: Any, command: Command, outcome: str, queue: str | None = None) -> Step:
        self.emit(E.NODE_EXITED, node=name, kind=node.kind, outcome=outcome, next=None)
        self.emit(E.FLOW_ENDED, flow=self.name, outcome=outcome, node=name, queue=queue)
        return self.step(self.state(name, "ended", outcome=outcome), command)

    def fail(self, name: str, message: str, *, entered: Any = None) -> Step:
        if entered is not None:
            self.emit(E.NODE_EXITED, node=name, kind=entered.kind, outcome="error", next=None)
        self.emit(E.FLOW_ENDED, flow=self.name, outcome="error", node=name, queue=None, error=message)
        return self.step(self.state(name, "ended", outcome="error"), Hangup((), self.language()))

    # -- entering nodes

    def goto(self, name: str) -> Step:
        """Enter ``name`` and follow instant nodes until one issues a command."""
        while True:
            self.chain += 1
            self.visits += 1
            if self.chain > MAX_INSTANT_CHAIN:
                return self.fail(
                    name, f"more than {MAX_INSTANT_CHAIN} nodes in a row without a prompt or input (a loop?)"
                )
            if self.visits > MAX_VISITS:
                return self.fail(name, f"more than {MAX_VISITS} nodes visited in one call")
            node = self.flow.nodes.get(name)
            if node is None:
                return self.fail(name, f"unknown node {name!r}")
            self.emit(E.NODE_ENTERED, node=name, kind=node.kind)
            try:
                out = self.enter(name, node)
            except FlowRuntimeError as exc:
                return self.fail(name, str(exc), entered=node)
            if isinstance(out, Step):
                return out
            name = out

    def enter(self, name: str, node: Any) -> Step | str:
        lang = self.language()
        if isinstance(node, PlayNode):
            media = self.media(node.sounds)
            if not media:  # everything interpolated to nothing: skip
                return self.exit(name, node, "next", node.next)
            return self.step(self.state(name, "play"), Play(media, lang, node.interruptible))
        if isinstance(node, MenuNode):
            return self.step(self.state(name, "menu"), self.menu_collect(node, [], flush=False))
        if isinstance(node, CollectNode):
            return self.step(self.state(name, "collect"), self.collect_collect(node, [], flush=False))
        if isinstance(node, LookupNode):
            command = Lookup(
                method=node.method,
                url=interpolate(node.url, self.scope(), url_quote=True),
                params={k: self.text(v) for k, v in node.params.items()},
                timeout=node.timeout,
                headers={k: self.text(v) for k, v in node.headers.items()},
            )
            return self.step(self.state(name, "lookup"), command)
        if isinstance(node, BranchNode):
            for i, rule in enumerate(node.rules):
                if self.rule_matches(rule):
                    return self.exit(name, node, f"rule:{i}", rule.next)
            return self.exit(name, node, "default", node.default)
        if isinstance(node, HoursNode):
            schedule = self.flows.schedules.get(node.schedule)
            if schedule is None:
                raise FlowRuntimeError(f"unknown schedule {node.schedule!r}")
            status = is_open(schedule, self.ctx.now)
            target = {"open": node.open, "closed": node.closed, "holiday": node.holiday or node.closed}[status]
            return self.exit(name, node, status, target)
        if isinstance(node, SetNode):
            values: dict[str, str] = {}
            for var, template in node.variables.items():
                values[var] = self.text(template)
                self.vars[var] = values[var]  # later values may use earlier ones
            self.set_vars(values)
            return self.exit(name, node, "next", node.next)
        if isinstance(node, QueueNode):
            queue = self.text(node.queue).strip()
            if not queue:
                raise FlowRuntimeError("the queue name is empty")
            try:
                priority = int(self.text(node.priority).strip())
            except ValueError:
                priority = 0
            skills = tuple(s for s in (self.text(x).strip() for x in node.skills) if s)
            endpoint = self.text(node.endpoint).strip() if node.endpoint else ""
            command = Queue(queue, priority, skills, endpoint or None, node.ring_timeout)
            return self.end(name, node, command, "queue", queue)
        if isinstance(node, TransferNode):
            number = self.text(node.number).strip()
            if not number:
                raise FlowRuntimeError("the transfer number is empty")
            caller_id = self.text(node.caller_id).strip() if node.caller_id else ""
            command = Transfer(node.endpoint.replace("{number}", number), caller_id or None, node.ring_timeout)
            return self.end(name, node, command, "transfer")
        if isinstance(node, RecordNode):
            command = Record(
                prompt=self.media(node.prompt),
                language=lang,
                name=f"ivr-{self.ctx.call_id}-{name}",
                max_seconds=node.max_seconds,
                beep=node.beep,
                max_silence_seconds=node.max_silence_seconds,
            )
            return self.step(self.state(name, "record"), command)
        if isinstance(node, CallbackNode):
            # The number is checked first (toll fraud: a presented number may be a premium line; do-not-call).
            return self.step(self.state(name, "callback_check"), CheckCallback(
                self.text(node.number).strip(), node.queue, tuple(sorted(self.vars.items())),
                f"ivr:{self.name}/{name}"))
        if isinstance(node, HangupNode):
            return self.end(name, node, Hangup(self.media(node.sounds), lang), "hangup")
        raise FlowRuntimeError(f"unsupported node type {node.kind!r}")  # pragma: no cover

    def callback_result(self, state: IvrState, node: CallbackNode, result: CallbackChecked) -> Step:
        name, lang = state.node, self.language()
        if result.allowed:
            booked = {"callback_id": result.callback_id} if result.callback_id else {}
            self.emit(E.CALLBACK_REQUESTED, node=name, number=result.number, queue=node.queue,
                      context=dict(self.vars), **booked)
            media = self.media(node.prompt)
            if not media:
                return self.goto(self.exit(name, node, "next", node.next))
            return self.step(self.state(name, "callback"), Play(media, lang, False))
        # Refused: no request is recorded (nobody may dial it), and the caller is told rather than promised.
        self.emit(E.CALLBACK_REFUSED, node=name, number=result.number, queue=node.queue, code=result.code,
                  reason=result.reason)
        media = self.media(node.refused_prompt)
        if not media:
            return self.goto(self.exit(name, node, "refused", node.on_refused or node.next))
        return self.step(self.state(name, "callback_refused"), Play(media, lang, False))

    def rule_matches(self, rule: Rule) -> bool:
        scope = self.scope()
        if rule.variable is not None:
            value = scope.get(rule.variable, "")
            if rule.equals is not None and value != rule.equals:
                return False
            if rule.in_ is not None and value not in rule.in_:
                return False
            if rule.matches is not None and not re.search(rule.matches, value):
                return False
        if rule.caller_number is not None and not re.search(rule.caller_number, self.ctx.caller_number):
            return False
        if rule.did is not None and not re.search(rule.did, self.ctx.did):
            return False
        if rule.time is not None:
            if rule.schedule is not None:
                schedule = self.flows.schedules.get(rule.schedule)
                if schedule is None:
                    raise FlowRuntimeError(f"unknown schedule {rule.schedule!r}")
                zone: Any = schedule.zone
            else:
                zone = self.flow.timezone
            if not in_window(rule.time, zone, self.ctx.now):
                return False
        return True

    # -- commands of menus and collects

    def menu_collect(self, node: MenuNode, before: list[str], *, flush: bool) -> Collect:
        return Collect(
            prompt=self.media([*before, *node.prompt]),
            language=self.language(),
            max_digits=1,
            terminator="",
            first_timeout=node.timeout,
            inter_timeout=node.timeout,
            barge_in=node.barge_in,
            flush=flush,
        )

    def collect_collect(self, node: CollectNode, before: list[str], *, flush: bool) -> Collect:
        return Collect(
            prompt=self.media([*before, *node.prompt]),
            language=self.language(),
            max_digits=node.max_digits,
            terminator=node.terminator,
            first_timeout=node.first_timeout,
            inter_timeout=node.inter_timeout,
            barge_in=node.barge_in,
            flush=flush,
        )

    def confirm_collect(self, node: CollectNode, digits: str, before: list[str], *, flush: bool) -> Collect:
        prompt = self.media([*before, *node.confirm_prompt])
        prompt += resolve_media([f"digits:{digits}"], {}, self.language())
        prompt += self.media(node.confirm_options_prompt)
        return Collect(
            prompt=prompt,
            language=self.language(),
            max_digits=1,
            terminator="",
            first_timeout=node.first_timeout,
            inter_timeout=node.inter_timeout,
            barge_in=node.barge_in,
            flush=flush,
        )

    # -- results

    def menu_result(self, state: IvrState, node: MenuNode, r: Collected) -> Step:
        name = state.node
        if r.digits == "" and not r.terminated:
            self.emit(E.TIMEOUT, node=name, attempt=state.attempt)
            reason = "timeout"
        else:
            valid = r.digits in node.options
            self.emit(E.INPUT, node=name, kind="menu", digits=r.digits, valid=valid)
            if valid:
                return self.goto(self.exit(name, node, f"option:{r.digits}", node.options[r.digits]))
            self.emit(E.INVALID, node=name, digits=r.digits, attempt=state.attempt)
            reason = "invalid"
        if state.attempt < node.retries:
            before = node.timeout_prompt if reason == "timeout" else node.invalid_prompt
            command = self.menu_collect(node, before, flush=reason == "invalid")
            return self.step(self.state(name, "menu", attempt=state.attempt + 1), command)
        return self.goto(self.exit(name, node, f"{reason}_exhausted", node.on_failure))

    def collect_valid(self, node: CollectNode, digits: str) -> bool:
        if not node.min_digits <= len(digits) <= node.max_digits:
            return False
        return node.pattern is None or re.fullmatch(node.pattern, digits) is not None

    def collect_result(self, state: IvrState, node: CollectNode, r: Collected) -> Step:
        name = state.node
        if r.digits == "" and not r.terminated:
            self.emit(E.TIMEOUT, node=name, attempt=state.attempt)
            reason = "timeout"
        else:
            valid = self.collect_valid(node, r.digits)
            self.emit(E.INPUT, node=name, kind="collect", digits=r.digits, valid=valid)
            if valid:
                self.set_vars({node.variable: r.digits})
                if node.confirm:
                    command = self.confirm_collect(node, r.digits, [], flush=False)
                    st = self.state(
                        name, "confirm", attempt=state.attempt, confirm_attempt=1,
                        reentries=state.reentries, pending=r.digits,
                    )
                    return self.step(st, command)
                return self.goto(self.exit(name, node, "next", node.next))
            self.emit(E.INVALID, node=name, digits=r.digits, attempt=state.attempt)
            reason = "invalid"
        if state.attempt < node.retries:
            before = node.timeout_prompt if reason == "timeout" else node.invalid_prompt
            command = self.collect_collect(node, before, flush=reason == "invalid")
            st = self.state(name, "collect", attempt=state.attempt + 1, reentries=state.reentries)
            return self.step(st, command)
        return self.goto(self.exit(name, node, f"{reason}_exhausted", node.on_failure))

    def confirm_result(self, state: IvrState, node: CollectNode, r: Collected) -> Step:
        name = state.node
        if r.digits in ("1", "2"):
            self.emit(E.INPUT, node=name, kind="collect", digits=r.digits, valid=True, stage="confirm")
            if r.digits == "1":
                return self.goto(self.exit(name, node, "next", node.next))
            if state.reentries < node.retries:
                command = self.collect_collect(node, [], flush=True)
                st = self.state(name, "collect", attempt=state.attempt, reentries=state.reentries + 1)
                return self.step(st, command)
            return self.goto(self.exit(name, node, "reentry_exhausted", node.on_failure))
        if r.digits == "" and not r.terminated:
            self.emit(E.TIMEOUT, node=name, attempt=state.confirm_attempt, stage="confirm")
            reason = "timeout"
        else:
            self.emit(E.INPUT, node=name, kind="collect", digits=r.digits, valid=False, stage="confirm")
            self.emit(E.INVALID, node=name, digits=r.digits, attempt=state.confirm_attempt, stage="confirm")
            reason = "invalid"
        if state.confirm_attempt < node.retries:
            before = node.timeout_prompt if reason == "timeout" else node.invalid_prompt
            command = self.confirm_collect(node, state.pending, before, flush=reason == "invalid")
            st = self.state(
                name, "confirm", attempt=state.attempt, confirm_attempt=state.confirm_attempt + 1,
                reentries=state.reentries, pending=state.pending,
            )
            return self.step(st, command)
        return self.goto(self.exit(name, node, f"confirm_{reason}_exhausted", node.on_failure))

    def lookup_result(self, state: IvrState, node: LookupNode, r: LookupDone) -> Step:
        name = state.node
        self.emit(E.LOOKUP, node=name, ok=r.ok, status=r.status, latency_ms=r.latency_ms, error=r.error)
        if not r.ok:
            return self.goto(self.exit(name, node, "error", node.on_error))
        mapped: dict[str, str] = {}
        for var, path in node.map.items():
            found, value = dig(r.data or {}, path)
            text = _stringify(value) if found else None
            if text is not None:
                mapped[var] = text
        self.set_vars(mapped)
        return self.goto(self.exit(name, node, "ok", node.next))

    def record_result(self, state: IvrState, node: RecordNode, r: Recorded) -> Step:
        name = state.node
        self.emit(E.RECORDING, node=name, name=r.name, ok=r.ok, duration_seconds=r.duration_seconds)
        if r.ok and node.variable:
            self.set_vars({node.variable: r.name})
        return self.goto(self.exit(name, node, "next", node.next))
