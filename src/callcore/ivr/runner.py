"""Runs an IVR flow on a live call: asks the pure stepper what to do, does it, feeds the result back.

All telephony goes through the call's primitives; all decisions are the stepper's. The flow and its config
version are fixed when the call enters the IVR, so a reload never changes a call mid-flow.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from callcore.acd.callback_booking import CallbackBooker
from callcore.acd.callback_guard import CallbackGuard
from callcore.api.callbacks_config import CallbacksSettings
from callcore.calls.call import ALL_DIGITS, Call, OriginateFailed
from callcore.events import utcnow
from callcore.ivr import stepper
from callcore.ivr.commands import (
    CSAT_VARIABLE,
    SURVEY_AGENT_VARIABLE,
    SURVEY_OUTCOME_PREFIX,
    SURVEY_QUEUE_VARIABLE,
    CallbackChecked,
    CheckCallback,
    Collect,
    Collected,
    Command,
    Finished,
    Hangup,
    IvrEvent,
    IvrEventType,
    Lookup,
    Play,
    Played,
    Queue,
    Record,
    Recorded,
    Result,
    Transfer,
)
from callcore.ivr.lookup import LookupClient
from callcore.ivr.model import Flow, IvrConfig

log = structlog.get_logger("callcore.ivr")

# What happens to a caller at a queue node. The ACD plugs in here; until then ``bridge_to_endpoint``.
QueueHandler = Callable[[Call, Queue], Awaitable[str]]


@dataclass(frozen=True)
class FlowBundle:
    """One immutable config version's flows: what a call keeps for its whole IVR session."""

    ivr: IvrConfig
    version: str


async def connect(call: Call, endpoint: str, ring_timeout: float, caller_id: str | None = None) -> str:
    """Ring ``endpoint``, bridge it with the caller, stay until either side hangs up."""
    try:
        leg = await call.originate(endpoint, timeout=ring_timeout, caller_id=caller_id)
    except OriginateFailed as exc:
        log.info("no answer from endpoint", endpoint=endpoint, cause=exc.cause)
        return "no_answer"
    await call.ensure_answered()
    await call.bridge_with(leg)
    while not call.gone and not leg.gone:
        await call.wait_until_gone(timeout=0.5)
    return "bridged"


async def bridge_to_endpoint(call: Call, cmd: Queue) -> str:
    """Interim queue: ring the node's configured endpoint; without one, apologise (no ACD yet)."""
    if cmd.endpoint is None:
        return "no_agents"
    return await connect(call, cmd.endpoint, cmd.ring_timeout)


class FlowRunner:
    def __init__(
        self,
        call: Call,
        flow: Flow,
        bundle: FlowBundle,
        lookups: LookupClient,
        queue_handler: QueueHandler = bridge_to_endpoint,
        callback_booker: CallbackBooker | None = None,
    ) -> None:
        self.call = call
        self.flow = flow
        self.bundle = bundle
        self.lookups = lookups
        self.queue_handler = queue_handler
        # None given: the default ``callbacks:`` policy, which allows no number, and nothing to book with (secure
        # by default: the caller is told no callback can be made rather than promised one).
        self.callback_booker = callback_booker or CallbackBooker(CallbackGuard(CallbacksSettings()))

    def _context(self) -> stepper.FlowContext:
        return stepper.FlowContext(
            call_id=str(self.call.call_id),
            did=self.call.did,
            caller_number=self.call.caller_number,
            now=utcnow(),
        )

    def _emit(self, events: list[IvrEvent]) -> None:
        for event in events:
            if event.type == IvrEventType.VARIABLES:
                # Call variables: kept on the call (agents, later nodes) and merged into calls.variables.
                self.call.variables.update({k: str(v) for k, v in event.data.items()})
                self.call.emit(event.type, dict(event.data))
            elif event.type == IvrEventType.FLOW_STARTED:
                self.call.emit(event.type, {"flow": self.flow.name, "version": self.bundle.version, **event.data})
            else:
                self.call.emit(event.type, {"flow": self.flow.name, **event.data})

    def _follow_language(self) -> None:
        """The call's language is the flow's (or its ``language_variable``'s): what the ACD plays later — position,
        overflow and callback prompts — and the runner's own apologies are then in the caller's language too."""
        variable = self.flow.language_variable
        chosen = self.call.variables.get(variable, "").strip() if variable else ""
        self.call.language = chosen or self.flow.language

    async def run(self) -> None:
        call = self.call
        # No answer up front: the first prompt answers (Call.play), and a caller sent straight to a queue is
        # answered by the ACD when it must wait or when the agent picks up.
        # A caller adopted after a restart (it was somewhere in this flow) goes on at the flow's safe node.
        step = stepper.start(self.flow, self.bundle.ivr, self._context(), dict(call.variables),
                             resumed=call.adopted)
        while True:
            self._emit(step.events)
            self._follow_language()
            command = step.command
            if command is None or step.state.done:
                return
            result = await self.execute(command)
            step = stepper.resume(self.flow, self.bundle.ivr, step.state, result, self._context())

    async def execute(self, cmd: Command) -> Result:
        call = self.call
        if isinstance(cmd, Play):
            digit = await call.play(cmd.media, interrupt=ALL_DIGITS if cmd.interruptible else None,
                                    lang=cmd.language)
            return Played(digit)
        if isinstance(cmd, Collect):
            if cmd.flush:
                call.flush_digits()
            if cmd.prompt:
                await call.play(cmd.prompt, interrupt=ALL_DIGITS if cmd.barge_in else None, lang=cmd.language)
                if not cmd.barge_in:
                    call.flush_digits()  # digits during a prompt that may not be interrupted do not count
            digits, ended = await call.gather(
                cmd.max_digits, terminator=cmd.terminator, first_timeout=cmd.first_timeout,
                inter_timeout=cmd.inter_timeout,
            )
            return Collected(digits, timed_out=ended == "timeout", terminated=ended == "terminator")
        if isinstance(cmd, Lookup):
            return await self.lookups.run(cmd)
        if isinstance(cmd, Record):
            if cmd.prompt:
                await call.play(cmd.prompt, lang=cmd.language)
            ok, duration = await call.record(
                cmd.name, max_seconds=cmd.max_seconds, beep=cmd.beep,
                max_silence_seconds=cmd.max_silence_seconds,
            )
            return Recorded(cmd.name, ok, duration)
        if isinstance(cmd, CheckCallback):
            booking = await self.callback_booker.book(cmd.number, cmd.queue, dict(cmd.context),
                                                      requested_by=cmd.requested_by, call=call)
            return CallbackChecked(booking.allowed, booking.number, booking.code, booking.reason,
                                   booking.callback_id)
        if isinstance(cmd, Queue):
            outcome = await self.queue_handler(call, cmd)
            if outcome in ("no_agents", "no_answer") and not call.gone:
                await call.play("sound:callcore/busy-call-later")
                await call.hangup()
            if outcome.startswith(SURVEY_OUTCOME_PREFIX):
                await self.survey(outcome[len(SURVEY_OUTCOME_PREFIX):])
            return Finished(outcome)
        if isinstance(cmd, Transfer):
            outcome = await connect(call, cmd.endpoint, cmd.ring_timeout, cmd.caller_id)
            if outcome == "no_answer" and not call.gone:
                await call.play("sound:callcore/sorry")
                await call.hangup()
            return Finished("transferred" if outcome == "bridged" else outcome)
        if isinstance(cmd, Hangup):
            if cmd.media:
                await call.play(cmd.media, lang=cmd.language)
            await call.hangup()
            return Finished("hung_up")
        raise TypeError(f"unknown IVR command {cmd!r}")

    async def survey(self, name: str) -> None:
        """The post-call survey (the agent hung up first, the ACD handed the caller over): run flow ``name`` of
        this call's config version, then record its answer, the ``csat`` variable 1-5, as ``survey_result`` with
        the queue and agent it rates (null score: no valid answer, e.g. the caller hung up)."""
        call = self.call
        flow = self.bundle.ivr.flows.get(name)
        call.variables.pop(CSAT_VARIABLE, None)  # only an answer given in this survey counts
        try:
            if flow is None:  # validation prevents this; a reload does not change a live call's bundle
                log.error("unknown survey flow; the caller is hung up", flow=name)
                await call.hangup()
            elif not call.gone:
                await FlowRunner(call, flow, self.bundle, self.lookups, self.queue_handler,
                                 self.callback_booker).run()
        finally:
            score = call.variables.get(CSAT_VARIABLE, "").strip()
            call.emit(IvrEventType.SURVEY_RESULT, {
                "flow": name, "queue": call.variables.get(SURVEY_QUEUE_VARIABLE) or None,
                "agent": call.variables.get(SURVEY_AGENT_VARIABLE) or None,
                "score": int(score) if score in ("1", "2", "3", "4", "5") else None})

