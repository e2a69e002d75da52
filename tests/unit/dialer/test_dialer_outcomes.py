"""How a dial attempt that never rang or was not answered is classified: a refused originate (the trunk is down, the
dial string is wrong) is ``failed`` — retried by the failed rule, visible as a broken trunk — never ``no_answer``."""

from __future__ import annotations

import pytest

from callcore.ari.client import AriClient
from callcore.calls.call import OriginateFailed
from callcore.dialer.service import _outcome_of
from tests.fakes.fake_ari import FakeAri
from tests.fakes.sinks import RecordingSink
from tests.unit.calls.test_runtime import Harness


def test_outcomes_by_cause_and_refusal() -> None:
    assert _outcome_of(OriginateFailed("PJSIP/x@trunk", 0, "channel unavailable", refused=True)) == "failed"
    assert _outcome_of(OriginateFailed("PJSIP/x@trunk", 0, "")) == "no_answer"  # rang out, no cause came
    assert _outcome_of(OriginateFailed("PJSIP/x@trunk", 19, "no answer")) == "no_answer"
    assert _outcome_of(OriginateFailed("PJSIP/x@trunk", 17, "user busy")) == "busy"
    assert _outcome_of(OriginateFailed("PJSIP/x@trunk", 34, "no circuit")) == "failed"


async def test_an_originate_asterisk_refuses_is_marked_refused(fake_ari: FakeAri, ari: AriClient,
                                                               sink: RecordingSink) -> None:
    fake_ari.fail_requests[("POST", "/channels")] = 400
    async with Harness(ari, sink, None) as h:
        with pytest.raises(OriginateFailed) as failed:
            await h.runtime.place_call("PJSIP/+31612345678@trunk", lambda call: None, timeout=5)
    assert failed.value.refused is True


async def test_the_campaigns_caller_name_goes_with_its_number(fake_ari: FakeAri, ari: AriClient,
                                                              sink: RecordingSink) -> None:
    fake_ari.fail_requests[("POST", "/channels")] = 400  # the request is what this test looks at
    async with Harness(ari, sink, None) as h:
        with pytest.raises(OriginateFailed):
            await h.runtime.place_call("PJSIP/+31612345678@trunk", lambda call: None, timeout=5,
                                       caller_id="+31881234567", caller_name='Telco "NL"')
    (_, _, query), = [r for r in fake_ari.requests if r[0] == "POST" and r[1].endswith("/channels")]
    assert query["callerId"] == '"Telco NL" <+31881234567>'


def test_max_lines_counts_every_line_the_campaign_holds_connected_calls_too() -> None:
    from types import SimpleNamespace

    from callcore.campaigns.model import CampaignConfig
    from callcore.dialer.service import CampaignRun

    run = CampaignRun("c", CampaignConfig(caller_id="+31881234567", default_region="NL", queue="sales", max_lines=3))
    run.attempts = {i: SimpleNamespace(phase=p, agent=None)  # type: ignore[misc]
                    for i, p in enumerate(["ringing", "waiting_agent", "connected", "connected", "done"])}
    assert run.in_flight == 2 and run.lines_in_use == 4  # over max_lines 3: no new call until one ends
