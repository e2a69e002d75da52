"""Transfers, consultation, conference, recording and supervision on real phones (sipp), real Asterisk, PostgreSQL.

Phones: agent01 (billing, nl), agent03 (tech + billing), agent05 as a supervisor's phone, the PSTN phone on the
trunk as an external number. The tech queue records every call (``recording: true`` in acd_test.yaml).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from callcore.acd.conversation import ConversationError
from callcore.app import CallcoreApp
from tests.integration.test_acd import agent_states, caller, events_of
from tests.sip import AgentPhone, PstnPhone
from tests.integration.conftest import assert_no_bridge_in_use
from tests.waiting import wait_until

SPEECH = Path("/usr/share/sip-tester/g711a.pcap")
pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def connected_to(app: CallcoreApp, agent: str) -> None:
    await wait_until(lambda: any(agent in c.agents for c in app.acd.conversations.values()), timeout=10,
                     what=f"a call connected to {agent}")


async def test_blind_transfer_to_another_queue_keeps_the_caller_and_frees_the_agent(acd_app: CallcoreApp):
    acd = acd_app.acd
    acd.login("agent01")
    acd.login("agent03")
    acd.pause("agent03", "meeting")
    with AgentPhone(1) as anna, AgentPhone(3, hangup_after_ms=1500) as cem:
        call = caller("7001")  # billing, nl: agent01
        await connected_to(acd_app, "agent01")
        with pytest.raises(ConversationError, match="unknown queue"):
            await acd.transfer("agent01", queue="nope")
        acd.ready("agent03")
        await acd.transfer("agent01", queue="tech")
        (await call).check()  # agent03 answered the transferred caller and hung up after 1.5 s
        await wait_until(lambda: anna.stats().get("SuccessfulCall(C)") == 1 and
                         cem.stats().get("SuccessfulCall(C)") == 1, timeout=5, what="both agents' calls to end")
    story = await events_of(acd_app, "7001", ("connected", "transferred", "queued", "recording_started",
                                               "recording_stopped"))
    types = [t for t, _ in story]
    assert types == ["queued", "connected", "transferred", "queued", "connected", "recording_started",
                     "recording_stopped"], types
    assert story[2][1] == {"kind": "blind", "from_agent": "agent01", "to_queue": "tech"}
    assert story[3][1]["queue"] == "tech" and story[3][1]["transferred"] is True
    assert [p["agent"] for t, p in story if t == "connected"] == ["agent01", "agent03"]
    assert [s for s, _ in await agent_states(acd_app, "agent01")][-2:] == ["on_call", "wrap_up"]
    # The tech queue records: the file is in Asterisk's spool and the event says where.
    stopped = story[-1][1]
    assert stopped["path"].endswith(f"{stopped['name']}.wav")
    await wait_until(lambda: (acd_app.config and (_spool(stopped["path"])).exists()), timeout=5,
                     what="the recording file")
    assert _spool(stopped["path"]).stat().st_size > 44  # more than a WAV header
    stored = await acd_app.ari.recordings.get_stored(stopped["name"])
    assert stored.format == "wav"


def _spool(path: str):
    from callcore.sandbox.asterisk import AsteriskSandbox

    return AsteriskSandbox(log=lambda _m: None).root / path.lstrip("/")


async def test_attended_transfer_consults_then_hands_the_caller_over(acd_app: CallcoreApp):
    acd = acd_app.acd
    acd.login("agent01")
    acd.login("agent03", paused=True)
    with AgentPhone(1) as anna, AgentPhone(3, hangup_after_ms=4000) as cem:
        call = caller("7001")
        await connected_to(acd_app, "agent01")
        acd.ready("agent03")
        result = await acd.consult("agent01", to_agent="agent03")
        assert result == {"consulting": "agent03"}
        assert acd.agents["agent03"].state == "on_call"
        with pytest.raises(ConversationError, match="is consulting"):
            await acd.consult("agent01", to_agent="agent02")
        await acd.complete_transfer("agent01")
        await wait_until(lambda: anna.stats().get("SuccessfulCall(C)") == 1, timeout=5, what="agent01 to be let go")
        assert acd.agents["agent01"].state == "wrap_up"
        (await call).check()  # agent03 talks with the caller, then hangs up
        await wait_until(lambda: cem.stats().get("SuccessfulCall(C)") == 1, timeout=5, what="agent03's call to end")
    story = await events_of(acd_app, "7001", ("consult_started", "consult_ended", "transferred"))
    kinds = [(t, p.get("outcome") or p.get("kind")) for t, p in story]
    assert kinds == [("consult_started", None), ("consult_ended", "completed"), ("transferred", "attended")]
    assert story[0][1]["to_agent"] == "agent03" and story[2][1]["to_agent"] == "agent03"
    assert [s for s, _ in await agent_states(acd_app, "agent03")] == [
        "paused", "ready", "reserved", "on_call", "wrap_up"]


async def test_consult_cancelled_then_a_three_way_conference_with_an_outside_number(acd_app: CallcoreApp):
    acd = acd_app.acd
    acd.login("agent01")
    acd.login("agent03", paused=True)
    with AgentPhone(1) as anna, AgentPhone(3) as cem, PstnPhone() as outside:
        call = caller("7001", hangup_after_ms=12_000)
        await connected_to(acd_app, "agent01")
        acd.ready("agent03")
        await acd.consult("agent01", to_agent="agent03")
        await acd.cancel_consult("agent01")
        await wait_until(lambda: cem.stats().get("SuccessfulCall(C)") == 1, timeout=5, what="agent03 hung up")
        assert acd.agents["agent03"].state == "ready"  # a cancelled consult is no call of its own: no wrap-up
        with pytest.raises(ConversationError, match="not a phone number"):
            await acd.consult("agent01", number="123&PJSIP/agent02")
        await acd.consult("agent01", number="0201234567")
        result = await acd.conference("agent01")
        assert result == {"conference": ["agent01", "0201234567"]}
        (await call).check()  # the caller hangs up after 12 s: everyone is let go
        await wait_until(lambda: anna.stats().get("SuccessfulCall(C)") == 1 and
                         outside.stats().get("SuccessfulCall(C)") == 1, timeout=5, what="all legs to end")
    await wait_until(lambda: acd_app.runtime.live_calls == 0, what="the call to end")
    story = await events_of(acd_app, "7001", ("consult_ended", "conference"))
    assert [p.get("outcome") for t, p in story if t == "consult_ended"] == ["cancelled", "conference"]
    assert [p["parties"] for t, p in story if t == "conference"] == [["agent01", "0201234567"]]


async def test_supervisor_listens_then_whispers_and_every_snoop_is_torn_down(acd_app: CallcoreApp):
    acd = acd_app.acd
    acd.login("agent01")
    # The agent's phone sends speech: Asterisk services (and detaches) a snoop's audio hooks on the spied
    # channel's media path, so a phone that sends no RTP at all would keep a stopped snoop alive until its call ends.
    with AgentPhone(1, media_pcap=SPEECH), AgentPhone(5) as supervisor:
        call = caller("7001", hangup_after_ms=10_000)
        await connected_to(acd_app, "agent01")
        listen = await acd.supervise("agent01", "PJSIP/agent05", "listen")
        snoops = await _snoop_channels(acd_app)
        assert snoops == [listen["snoop_channel"]]
        await acd.stop_supervision("agent01", listen["session"])
        await wait_until(lambda: supervisor.stats().get("SuccessfulCall(C)") == 1, timeout=5,
                         what="the supervisor's phone to be hung up")
        await _no_snoop_left(acd_app)
        whisper = await acd.supervise("agent01", "PJSIP/agent05", "whisper")
        assert await _snoop_channels(acd_app) == [whisper["snoop_channel"]]
        (await call).check()  # the caller hangs up: the whisper session ends with the call
        await wait_until(lambda: supervisor.stats().get("SuccessfulCall(C)") == 2, timeout=5,
                         what="the supervisor's second call to end")
    await wait_until(lambda: acd_app.runtime.live_calls == 0, what="the call to end")
    await _no_snoop_left(acd_app)
    await assert_no_bridge_in_use(acd_app)
    story = await events_of(acd_app, "7001", ("supervision_started", "supervision_ended"))
    assert [(t, p["mode"] if t.endswith("started") else p["reason"]) for t, p in story] == [
        ("supervision_started", "listen"), ("supervision_ended", "stopped"),
        ("supervision_started", "whisper"), ("supervision_ended", "call ended")]


async def _snoop_channels(app: CallcoreApp) -> list[str]:
    await asyncio.sleep(0.2)
    return [c.id for c in await app.ari.channels.list() if c.name.startswith("Snoop/")]


async def _no_snoop_left(app: CallcoreApp, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (left := await _snoop_channels(app)) and loop.time() < deadline:
        pass
    if left:
        from callcore.sandbox.asterisk import AsteriskSandbox
        print("CLI>", AsteriskSandbox(log=lambda _m: None).cli("core show channels concise"))
    assert left == [], f"snoop channels still up after {timeout} s: {left}"


async def test_virtual_hold_calls_the_caller_back_in_turn_and_connects_the_reserved_agent(acd_app: CallcoreApp):
    from tests.sip import Dtmf, run_caller

    acd = acd_app.acd
    acd.login("agent01", paused=True)  # staffed but busy: the caller waits and hears the offer after 1 s
    with AgentPhone(1, hangup_after_ms=1500) as anna, PstnPhone() as callee:
        # Press 1 once the offer has started: callcore confirms, keeps the place and hangs up (BYE).
        (await asyncio.to_thread(run_caller, "7005", [Dtmf("1", pause_before_ms=3000)], bye_timeout_ms=20_000,
                                 timeout=40)).check()
        assert [c.callback_number for c in acd.waiting.values()] == ["+31201234567"]
        acd.ready("agent01")  # its turn: agent01 is reserved, the caller's phone rings
        await wait_until(lambda: anna.stats().get("SuccessfulCall(C)") == 1, timeout=30,
                         what="the callback to reach agent01")
        await wait_until(lambda: callee.stats().get("SuccessfulCall(C)") == 1, timeout=10,
                         what="the called-back caller to be hung up after the agent")
    await wait_until(lambda: acd_app.runtime.live_calls == 0, what="the callback call to end")
    assert acd.waiting == {}
    original = await events_of(acd_app, "7005", ("queued", "virtual_hold_requested", "virtual_hold_attempt"))
    assert [t for t, _ in original] == ["queued", "virtual_hold_requested", "virtual_hold_attempt"]
    assert original[2][1]["outcome"] == "answered"
    callback_id = original[2][1]["callback_call_id"]
    await acd_app.writer.flush()
    rows = await acd_app.pool.fetch(
        "SELECT type, payload FROM call_events WHERE call_id = $1::uuid ORDER BY id", callback_id)
    story = [r["type"] for r in rows]
    assert story[0] == "call_started" and rows[0]["payload"]["direction"] == "outbound"
    assert "connected" in story and story[-1] == "call_ended"
    assert next(r["payload"] for r in rows if r["type"] == "connected")["agent"] == "agent01"
    await wait_until(lambda: acd.agents["agent01"].state == "ready", timeout=5, what="agent01's wrap-up to end")
    assert [s for s, _ in await agent_states(acd_app, "agent01")] == [
        "paused", "ready", "reserved", "on_call", "wrap_up", "ready"]
