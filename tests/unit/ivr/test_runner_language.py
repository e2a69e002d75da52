"""The call takes the flow's language (or its ``language_variable``'s): what the ACD plays to a queued caller —
position, overflow, callback prompts, which name no language — is then in the caller's language too."""

from __future__ import annotations

from typing import Any

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
    "dutch": {"start": "q", "language": "nl", "language_variable": "lang",
              "nodes": {"q": {"type": "queue", "queue": "sales"}}},
    "english": {"start": "pick", "language": "nl", "language_variable": "lang", "nodes": {
        "pick": {"type": "set", "variables": {"lang": "en"}, "next": "q"},
        "q": {"type": "queue", "queue": "sales"}}},
}})


class Queued:
    """Stands in for the ACD: notes the call's language and plays a prompt the way the ACD does (no language)."""

    def __init__(self) -> None:
        self.languages: list[str] = []

    async def __call__(self, call: Call, cmd: Queue) -> str:
        self.languages.append(call.language)
        await call.play("sound:callcore/queue-position")
        await call.hangup()
        return "hung_up"


async def run_flow(fake_ari: FakeAri, ari: AriClient, sink: RecordingSink, flow: str) -> tuple[Queued, Any]:
    queued = Queued()
    runner = lambda call: FlowRunner(call, IVR.flows[flow], FlowBundle(IVR, "v1"), LookupClient(), queued).run()  # noqa: E731
    async with Harness(ari, sink, runner):
        await fake_ari.new_call()
        await wait_until(lambda: "call_ended" in sink.types())
    return queued, fake_ari


async def test_a_queued_caller_hears_the_acd_in_the_flows_language(fake_ari: FakeAri, ari: AriClient,
                                                                      sink: RecordingSink):
    queued, _ = await run_flow(fake_ari, ari, sink, "dutch")
    assert queued.languages == ["nl"]


async def test_the_language_variable_set_in_the_flow_wins(fake_ari: FakeAri, ari: AriClient, sink: RecordingSink):
    queued, _ = await run_flow(fake_ari, ari, sink, "english")
    assert queued.languages == ["en"]
