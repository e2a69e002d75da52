"""The post-call survey: the agent hangs up first, the ACD hands the caller to the queue's survey flow, the caller
presses a digit 1-5, ``survey_result`` records it with the queue and the agent. On the fake ARI, with the real
IVR runner and the ACD's real hand-off (``acd.conversation`` decides, ``acd.service`` hands over)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from callcore.acd.conversation import Conversation, Party, PostCallSurvey
from callcore.acd.model import AcdConfig
from callcore.acd.service import _hand_to_survey
from callcore.acd.validate import validate_acd
from callcore.ari.client import AriClient
from callcore.calls.call import Call
from callcore.ivr.commands import Queue
from callcore.ivr.lookup import LookupClient
from callcore.ivr.model import IvrConfig
from callcore.ivr.runner import FlowBundle, FlowRunner
from tests.fakes.fake_ari import FakeAri
from tests.fakes.sinks import RecordingSink
from tests.unit.calls.test_runtime import Harness
from tests.waiting import wait_until

IVR = IvrConfig.model_validate({"flows": {
    "main": {"start": "to_sales", "nodes": {"to_sales": {"type": "queue", "queue": "sales"}}},
    "survey": {"start": "rate", "language": "nl", "nodes": {
        "rate": {"type": "collect", "prompt": ["callcore/survey-rate"], "variable": "csat", "max_digits": 1,
                 "pattern": "[1-5]", "first_timeout": 5, "retries": 2, "next": "thanks", "on_failure": "bye"},
        "thanks": {"type": "hangup", "sounds": ["callcore/survey-thanks"]},
        "bye": {"type": "hangup"},
    }},
}})
BUNDLE = FlowBundle(IVR, "v1")


class AgentHangsUpFirst:
    """Stands in for ``AcdService.handle``: the conversation ended with the agent hanging up first (what
    ``Conversation.run`` returns then), and the ACD's real hand-off follows."""

    def __init__(self) -> None:
        self.calls: list[Queue] = []

    async def __call__(self, call: Call, cmd: Queue) -> str:
        self.calls.append(cmd)
        return _hand_to_survey(call, PostCallSurvey("survey", cmd.queue, "a1"))


def runner_flow(queue_handler: Any) -> Any:
    lookups = LookupClient()
    return lambda call: FlowRunner(call, IVR.flows["main"], BUNDLE, lookups, queue_handler).run()


def of_type(sink: RecordingSink, kind: str) -> list[dict[str, Any]]:
    return [dict(e.data) for e in sink.events if e.type == kind]


async def test_the_caller_rates_the_call_after_the_agent_hung_up(fake_ari: FakeAri, ari: AriClient,
                                                                   sink: RecordingSink):
    async with Harness(ari, sink, runner_flow(AgentHangsUpFirst())):
        ch = await fake_ari.new_call()
        await wait_until(lambda: "survey_started" in sink.types())
        await wait_until(lambda: "playback_finished" in sink.types())  # the "rate 1 to 5" prompt
        await fake_ari.press(ch.id, "4")
        await wait_until(lambda: "call_ended" in sink.types())
    assert of_type(sink, "survey_started") == [{"flow": "survey", "queue": "sales", "agent": "a1"}]
    assert {"survey_queue": "sales", "survey_agent": "a1"} in of_type(sink, "variables_set")
    assert {"csat": "4"} in of_type(sink, "variables_set")
    assert of_type(sink, "survey_result") == [{"flow": "survey", "queue": "sales", "agent": "a1", "score": 4}]
    # The main flow's visit ended (to a queue) before the survey flow's began: IVR KPIs keep the main flow.
    flows = [(e.type, e.data["flow"]) for e in sink.events if e.type in ("ivr_started", "ivr_ended")]
    assert flows == [("ivr_started", "main"), ("ivr_ended", "main"), ("ivr_started", "survey"),
                     ("ivr_ended", "survey")]
    assert of_type(sink, "ivr_ended")[1]["outcome"] == "hangup"
    assert sink.types().index("survey_result") < sink.types().index("call_ended")


async def test_a_digit_outside_1_to_5_is_asked_again(fake_ari: FakeAri, ari: AriClient, sink: RecordingSink):
    async with Harness(ari, sink, runner_flow(AgentHangsUpFirst())):
        ch = await fake_ari.new_call()
        await wait_until(lambda: "playback_finished" in sink.types())
        await fake_ari.press(ch.id, "9")
        await wait_until(lambda: "ivr_invalid" in sink.types())
        await wait_until(lambda: sink.types().count("playback_finished") >= 2)
        await fake_ari.press(ch.id, "2")
        await wait_until(lambda: "call_ended" in sink.types())
    assert [r["score"] for r in of_type(sink, "survey_result")] == [2]


async def test_a_caller_who_hangs_up_in_the_survey_gives_no_score(fake_ari: FakeAri, ari: AriClient,
                                                                   sink: RecordingSink):
    async with Harness(ari, sink, runner_flow(AgentHangsUpFirst())):
        ch = await fake_ari.new_call()
        await wait_until(lambda: "survey_started" in sink.types())
        await fake_ari.caller_hangs_up(ch.id)
        await wait_until(lambda: "call_ended" in sink.types())
    assert of_type(sink, "survey_result") == [{"flow": "survey", "queue": "sales", "agent": "a1", "score": None}]


async def test_without_a_survey_the_queue_outcome_ends_the_flow(fake_ari: FakeAri, ari: AriClient,
                                                                 sink: RecordingSink):
    async def bridged(call: Call, cmd: Queue) -> str:
        await call.hangup()
        return "bridged"

    async with Harness(ari, sink, runner_flow(bridged)):
        await fake_ari.new_call()
        await wait_until(lambda: "call_ended" in sink.types())
    assert "survey_started" not in sink.types() and "survey_result" not in sink.types()


# -- the ACD's decision ---------------------------------------------------------------------------------------


def conversation(survey: str | None, *, caller_gone: bool, direction: str = "inbound") -> Conversation:
    config = AcdConfig.model_validate({"skills": [], "agents": {"a1": {"endpoint": "PJSIP/a1", "queues": ["sales"]}},
                                       "queues": {"sales": {"survey": survey}}})
    acd = SimpleNamespace(config=config, now=lambda: 0.0)
    entry = SimpleNamespace(call=SimpleNamespace(gone=caller_gone, direction=direction), queue="sales")
    conv = Conversation(acd, entry, "a1", SimpleNamespace(), "bridge-1")  # type: ignore[arg-type]
    conv.last_left = Party(SimpleNamespace(), "a1")  # type: ignore[arg-type]
    conv.parties.clear()
    return conv


def test_the_agent_hanging_up_first_hands_the_caller_to_the_queues_survey():
    assert conversation("survey", caller_gone=False)._survey_after_agent_left() == PostCallSurvey("survey", "sales",
                                                                                                  "a1")


def test_no_survey_when_the_caller_hung_up_first_or_the_queue_has_none():
    assert conversation("survey", caller_gone=True)._survey_after_agent_left() is None
    assert conversation(None, caller_gone=False)._survey_after_agent_left() is None


def test_no_survey_for_a_call_that_did_not_come_through_the_ivr():
    # A dialer call or a callback has no flow to run the survey in: no survey_started for a survey nobody runs.
    assert conversation("survey", caller_gone=False, direction="outbound")._survey_after_agent_left() is None


def test_the_hand_off_ties_the_survey_to_the_queue_and_agent():
    emitted: list[tuple[str, dict[str, Any]]] = []
    call = SimpleNamespace(variables={}, emit=lambda t, d: emitted.append((t, dict(d))))
    assert _hand_to_survey(call, PostCallSurvey("survey", "sales", "a1")) == "survey:survey"  # type: ignore[arg-type]
    assert call.variables == {"survey_queue": "sales", "survey_agent": "a1"}
    assert emitted == [("variables_set", {"survey_queue": "sales", "survey_agent": "a1"}),
                       ("survey_started", {"flow": "survey", "queue": "sales", "agent": "a1"})]


# -- validation -----------------------------------------------------------------------------------------------


def test_a_survey_must_be_a_flow_and_should_not_send_callers_to_a_queue():
    def issues(survey: str) -> tuple[list[str], list[str]]:
        acd = AcdConfig.model_validate({"skills": [], "agents": {"a1": {"endpoint": "PJSIP/a1", "queues": ["sales"]}},
                                        "queues": {"sales": {"survey": survey}}})
        errors, warnings = validate_acd(acd, lines={}, file="callcore.yaml", ivr=IVR)
        return [f"{i.path}: {i.message}" for i in errors], [f"{i.path}: {i.message}" for i in warnings]

    assert issues("survey") == ([], [])
    errors, _ = issues("surve")
    assert errors == ["queues.sales.survey: unknown flow 'surve'; did you mean 'survey'?"]
    _, warnings = issues("main")
    assert warnings == ["queues.sales.survey: the survey flow 'main' sends callers to a queue: after a survey they "
                        "would wait for an agent again"]


def test_the_survey_key_is_optional_and_not_empty():
    import pydantic
    import pytest

    assert AcdConfig.model_validate({"queues": {"q": {}}}).queues["q"].survey is None
    with pytest.raises(pydantic.ValidationError):
        AcdConfig.model_validate({"queues": {"q": {"survey": ""}}})
