"""The predictive dialer and answering-machine messages on real phones: the simulated phone network behind the
trunk (sipp: the last digit of a number picks a person, a busy line, no answer or a machine), sipp agent phones,
real Asterisk with AMD(), and PostgreSQL. What the network received, what PostgreSQL holds and what the service
says must agree.

Config: tests/data/dialer_predictive_test.yaml (campaign ``surge``: predictive; ``voicemail``: a machine gets a
message after its beep)."""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from callcore.app import CallcoreApp
from callcore.dialer.pacing import Decision, PacingSnapshot
from callcore.leads import store
from callcore.leads.csv_import import import_leads
from tests.integration.conftest import app_from_yaml, assert_no_bridge_in_use
from tests.integration.test_dialer import number, zone_at
from tests.sip import AgentPhone, PstnNetwork
from tests.sip.dtmf_pcap import write_pcap
from tests.sip.runner import render
from tests.sip.speech_pcap import ALAW_SILENCE, _packets, _speech_payloads, write_person_pcap
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
CONFIG = Path(__file__).resolve().parents[1] / "data" / "dialer_predictive_test.yaml"
AGENTS = ("agent01", "agent02", "agent03")
COMPLIANCE = "sound:callcore/outbound-abandoned"


@pytest.fixture
async def outbound_app(asterisk, pg_dsn, tmp_path, monkeypatch):
    async with app_from_yaml(CONFIG.read_text(), pg_dsn, tmp_path, monkeypatch) as app:
        yield app


async def poll(pred: Callable[[], Awaitable[object]], timeout: float, what: str | Callable[[], str]) -> None:
    """``wait_until`` for a condition that needs a query (``what`` may be computed when it fails)."""
    deadline = time.monotonic() + timeout
    while not await pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what() if callable(what) else what}")
        await asyncio.sleep(0.2)


async def load_leads(app: CallcoreApp, tmp_path: Path, campaign: str, numbers: list[str], tz: str) -> None:
    csv = tmp_path / f"{campaign}.csv"
    csv.write_text("name,phone,timezone\n" + "".join(f"Lead {i},{n},{tz}\n" for i, n in enumerate(numbers)))
    assert app.dialer is not None
    report = await import_leads(app.pool, campaign, app.dialer.run_of(campaign).config, csv)
    assert report.imported == len(numbers), report


async def events_of(app: CallcoreApp, call_id: Any) -> list[dict[str, Any]]:
    rows = await app.pool.fetch("SELECT type, payload, occurred_at FROM call_events WHERE call_id = $1 ORDER BY id",
                                call_id)
    return [dict(r) for r in rows]


# ---------------------------------------------------------------------------------------------------------------
# 1. Predictive mode: dials ahead of the agents, keeps its abandonment limit, leaves nothing behind.
# ---------------------------------------------------------------------------------------------------------------

# 40 leads, more busy lines and no-answers than people: the pacer has a reason to dial ahead. By the last digit
# (tests/sip/scenarios/pstn_sim.xml): 0-3 a person, 4-5 busy, 6-7 no answer, 8-9 an answering machine.
PEOPLE = [n for n in range(100) if n % 10 in (0, 1, 2, 3)][:12]
BUSY = [n for n in range(100) if n % 10 in (4, 5)][:16]
NO_ANSWER = [n for n in range(100) if n % 10 in (6, 7)][:8]
MACHINES = [n for n in range(100) if n % 10 in (8, 9)][:4]
# surge's retry rules (busy 3 attempts, no answer 2, machine 1; a person once, answered or abandoned).
TRIES = {"busy": 3, "no_answer": 2}


def dial_order() -> list[int]:
    """The CSV's order (the first due order): mixed, the same every run."""
    order = PEOPLE + BUSY + NO_ANSWER + MACHINES
    random.Random(2).shuffle(order)
    return order


def ready_timelines(agent_rows: list[Any]) -> dict[str, list[tuple[datetime, str]]]:
    out: dict[str, list[tuple[datetime, str]]] = {}
    for r in agent_rows:
        out.setdefault(r["agent_id"], []).append((r["occurred_at"], r["state"]))
    return out


def ready_at(timelines: dict[str, list[tuple[datetime, str]]], t: datetime) -> int:
    """Agents whose last state change at or before ``t`` made them ready."""
    n = 0
    for changes in timelines.values():
        state = None
        for at, s in changes:
            if at > t:
                break
            state = s
        if state == "ready":
            n += 1
    return n


def in_flight_at_launches(attempts: list[dict[str, Any]], agent_rows: list[Any]) -> list[tuple[datetime, int, int]]:
    """At each launch: (when, calls in flight, agents ready). In flight: dialled and not yet resolved — busy or no
    answer (``ended_at``) or answered and classified by AMD (``answered_at``: the dialer's verdict time; a person
    then waiting for an agent is not counted, which only undercounts). Progressive pacing never launches beyond
    the ready agents, so ``in flight > ready`` at a launch is the pacer dialling ahead."""
    timelines = ready_timelines(agent_rows)
    out = []
    for a in attempts:
        t = a["started_at"]
        flying = sum(1 for b in attempts if b["started_at"] <= t < (b["answered_at"] or b["ended_at"]))
        out.append((t, flying, ready_at(timelines, t)))
    return out


async def test_a_predictive_campaign_dials_ahead_on_real_phones_within_its_abandonment_limit(
    outbound_app: CallcoreApp, tmp_path: Path
):
    app = outbound_app
    assert app.dialer is not None
    run = app.dialer.run_of("surge")
    cfg = run.config
    assert cfg.mode == "predictive"
    order = dial_order()
    await load_leads(app, tmp_path, "surge", [number(n) for n in order], zone_at(range(9, 20)))

    # Every pacing decision with what the pacer saw (the service's own snapshot), for the dial-ahead check.
    decisions: list[tuple[PacingSnapshot, Decision]] = []
    pacer = app.dialer.pacer_of(run)  # the campaign's own pacer (its `pacing:` settings)
    decide = pacer.decide

    def spy(now: float, snap: PacingSnapshot, model: Any) -> Decision:
        d = decide(now, snap, model)
        decisions.append((snap, d))
        return d

    pacer.decide = spy  # type: ignore[method-assign]

    for agent in AGENTS:
        app.acd.login(agent)
    expected = len(PEOPLE) + TRIES["busy"] * len(BUSY) + TRIES["no_answer"] * len(NO_ANSWER) + len(MACHINES)
    with ExitStack() as stack:
        phones = [stack.enter_context(AgentPhone(i, hangup_after_ms=2000)) for i in (1, 2, 3)]
        network = stack.enter_context(PstnNetwork(ring_ms=500))
        await app.dialer.start("surge")

        async def list_done() -> bool:  # every lead reached or out of attempts, and no attempt left open
            left = await app.pool.fetchval("SELECT count(*) FROM leads WHERE campaign = 'surge' "
                                           "AND status NOT IN ('connected', 'exhausted')")
            return left == 0 and run.attempts == {}

        # About 2 minutes (about 110 s in a simulation of this list with the same pacer and timings).
        await poll(list_done, timeout=190,
                   what=lambda: f"the list to be done ({run.dialed} of {expected} attempts; {run.last_decision})")
        await wait_until(lambda: app.runtime.live_calls == 0, timeout=15, what="every call to end")
        await asyncio.sleep(3)  # every retry used up: the dialer must stay quiet (and sipp's stats catch up)
        dialed = run.dialed  # checked against the retry rules below
        dialled = network.dialled()
        talks = sum(int(p.stats().get("SuccessfulCall(C)", 0) or 0) for p in phones)

    # Nothing left ringing or stuck, in callcore and in Asterisk.
    assert run.attempts == {} and run.in_flight == 0
    assert app.runtime.live_calls == 0
    assert not app.acd.waiting
    assert {a: app.acd.agents[a].state for a in AGENTS} == {a: "ready" for a in AGENTS}
    assert all(app.acd.agents[a].active_calls == 0 for a in AGENTS)

    async def no_channels() -> bool:
        for link in app.links:
            if await link.ari.channels.list():
                return False
        return True

    await poll(no_channels, timeout=10, what="Asterisk to have no channel left")
    await assert_no_bridge_in_use(app)
    await app.writer.flush()
    db = app.pool
    assert await db.fetchval("SELECT count(*) FROM calls WHERE ended_at IS NULL") == 0
    assert await db.fetchval("SELECT count(*) FROM leads WHERE campaign = 'surge' AND status = 'dialing'") == 0

    # Every lead attempted by the retry rules, and the network saw exactly those calls.
    rows = [dict(r) for r in await db.fetch(
        "SELECT attempt_id, call_id, number, outcome, abandoned, agent_id, amd_status, connect_delay_seconds, "
        "talk_seconds, started_at, answered_at, ended_at FROM lead_attempts WHERE campaign = 'surge' "
        "ORDER BY started_at, id")]
    assert sorted(dialled) == sorted(r["number"] for r in rows)
    by_number: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_number.setdefault(r["number"], []).append(r)
    outcomes = {k: [r["outcome"] for r in v] for k, v in by_number.items()}
    for n in PEOPLE:
        assert outcomes.get(number(n)) in (["human"], ["abandoned"]), (n, outcomes.get(number(n)))
    def retried_by_the_rules(tries: list[str]) -> bool:
        """Each outcome retried up to its own limit; the lead stopped when its last outcome reached that limit."""
        return (all(tries.count(o) <= TRIES[o] for o in set(tries))
                and tries.count(tries[-1]) == TRIES[tries[-1]])

    for n in BUSY:
        # A busy callee answers 486 at once; on a loaded machine an attempt may still end as no answer first.
        tries = outcomes.get(number(n)) or []
        assert set(tries) <= {"busy", "no_answer"} and tries.count("busy") >= 1, (n, tries)
        assert retried_by_the_rules(tries), (n, tries)
    for n in NO_ANSWER:
        assert outcomes.get(number(n)) == ["no_answer"] * TRIES["no_answer"], (n, outcomes.get(number(n)))
    for n in MACHINES:
        assert outcomes.get(number(n)) == ["machine"], (n, outcomes.get(number(n)))
    assert len(rows) == dialed >= expected  # and nothing more once the retries were used up (checked per lead)
    for tries in by_number.values():  # each retry waited its delay (2 s) after the attempt before
        for before, after in zip(tries, tries[1:]):
            assert (after["started_at"] - before["ended_at"]).total_seconds() >= 1.9, (before, after)
    statuses = dict(await db.fetch("SELECT number, status FROM leads WHERE campaign = 'surge'"))
    for num, tries in by_number.items():
        want = "connected" if tries[-1]["outcome"] == "human" else "exhausted"  # until the agent's disposition
        assert statuses[num] == want, (num, statuses[num], outcomes[num])

    humans = [r for r in rows if r["outcome"] == "human"]
    abandoned = [r for r in rows if r["abandoned"]]
    assert humans, "no person reached an agent"
    for r in humans:
        assert r["agent_id"] in AGENTS and r["amd_status"] == "HUMAN", r
        assert r["connect_delay_seconds"] is not None and r["connect_delay_seconds"] < 2 and not r["abandoned"], r
    assert talks == len(humans)

    # No agent ever had two calls at once: replay each agent's states (every offer found it ready, transitions
    # chain), then its conversations (connected → talk end) must not overlap.
    agent_rows = await db.fetch("SELECT agent_id, state, previous, call_id, occurred_at FROM agent_events "
                                "ORDER BY id")
    per_agent: dict[str, list[Any]] = {}
    for r in agent_rows:
        per_agent.setdefault(r["agent_id"], []).append(r)
    for agent, timeline in per_agent.items():
        for r in timeline:
            if r["state"] == "reserved":
                assert r["previous"] == "ready", (agent, [(t["state"], t["previous"]) for t in timeline])
        for a, b in zip(timeline, timeline[1:]):
            assert b["previous"] == a["state"], f"{agent}: transitions do not chain: {a['state']} → {b['previous']}"
    for agent in AGENTS:
        spans = sorted((r["answered_at"] + timedelta(seconds=r["connect_delay_seconds"]), r["talk_seconds"])
                       for r in humans if r["agent_id"] == agent)
        for (start, talk), (next_start, _) in zip(spans, spans[1:]):
            assert start + timedelta(seconds=talk) <= next_start + timedelta(seconds=0.05), (agent, spans)
    on_call: dict[Any, list[str]] = {}
    for r in agent_rows:
        if r["state"] == "on_call":
            on_call.setdefault(r["call_id"], []).append(r["agent_id"])
    for r in rows:
        if r["outcome"] == "human":
            assert on_call.get(r["call_id"]) == [r["agent_id"]], (r, on_call.get(r["call_id"]))
        else:  # busy, no answer, machine, abandoned: never talked to an agent
            assert r["call_id"] not in on_call, r
    machine_or_unanswered = [r["call_id"] for r in rows if r["outcome"] in ("busy", "no_answer", "machine")]
    offered = await db.fetchval("SELECT count(*) FROM agent_events WHERE call_id = ANY($1::uuid[])",
                                machine_or_unanswered)
    assert offered == 0  # no agent was ever offered a call nobody human answered

    # The pacer dialled ahead: it decided so (its own snapshot), and PostgreSQL shows more calls in flight than
    # ready agents at some launch.
    ahead = [(s, d) for s, d in decisions if d.reason == "predictive" and d.launch > 0]
    assert ahead, f"the pacer never dialled ahead: {sorted({d.reason for _, d in decisions})}"
    assert all(len(s.ringing) + s.answered_waiting + d.launch > s.agents_ready for s, d in ahead)
    launches = in_flight_at_launches(rows, [r for r in agent_rows if r["agent_id"] in AGENTS])
    beyond = [(t, flying, ready) for t, flying, ready in launches if flying > ready]
    assert beyond, f"never more calls in flight than agents ready; at most {max(f for _, f, _ in launches)} in flight"
    assert max(f for _, f, _ in launches) <= 3 * len(AGENTS)  # the pacer's line cap: 3 calls ringing per agent

    # Every abandoned call was a person who heard the compliance message in full, then callcore hung up; no one
    # else heard it.
    for r in abandoned:
        assert r["outcome"] == "abandoned", f"a person connected after the 2 s limit, without the message: {r}"
        events = await events_of(app, r["call_id"])
        overflow = [e["payload"] for e in events if e["type"] == "overflow"]
        assert overflow and overflow[0]["reason"] == "connect_limit", events
        assert [e["payload"]["media"] for e in events if e["type"] == "playback_started"] == [COMPLIANCE]
        finished = [e for e in events if e["type"] == "playback_finished"]
        assert [(e["payload"]["media"], e["payload"]["state"]) for e in finished] == [(COMPLIANCE, "done")]
        hangup = [e for e in events if e["type"] == "hangup"]
        assert hangup and hangup[0]["payload"]["by"] == "callcore" and hangup[0]["occurred_at"] >= \
            finished[0]["occurred_at"], events
    heard = await db.fetchval("SELECT count(DISTINCT call_id) FROM call_events WHERE type = 'playback_started' "
                              "AND payload->>'media' = $1", COMPLIANCE)
    assert heard == len(abandoned)

    # The abandonment in the campaign's window is within its limit: the ledger as `callcore report dialer` reads
    # it (the store function and the command itself), and the service's own ledger agrees.
    policy = cfg.policy()
    machines = sum(1 for r in rows if r["outcome"] == "machine")
    fp = machines * cfg.amd.false_positive_estimate
    window = await store.current_abandon_rate(db, "surge", cfg, now=datetime.now(timezone.utc))
    assert (window.attempts, window.live_answers, window.abandoned, window.machine) == (
        len(rows), len(humans) + sum(1 for r in rows if r["outcome"] == "abandoned"), len(abandoned), machines)
    assert window.passed and window.rate <= policy.limit, window
    report = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "callcore.cli", "report", "dialer", "surge", "-c",
                         str(tmp_path / "callcore.yaml"), "--json"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=dict(os.environ))
    assert report.returncode == 0, report.stderr  # 3: a window over the limit
    ledger = json.loads(report.stdout)
    assert ledger["limit"] == policy.limit and all(w["passed"] for w in ledger["windows"])
    assert sum(w["attempts"] for w in ledger["windows"]) == len(rows)  # the recorded attempts, as above
    assert ledger["rolling"]["passed"] and ledger["rolling"]["abandoned"] == len(abandoned)
    pacing = app.dialer.pacing("surge")
    assert pacing["abandon_live"] == pytest.approx(window.live_answers + fp)
    assert pacing["abandon_abandons"] == pytest.approx(len(abandoned) + fp)
    assert pacing["abandon_abandons"] <= policy.limit * pacing["abandon_live"] + 1e-9


# ---------------------------------------------------------------------------------------------------------------
# 2. An answering machine gets the campaign's message after its beep.
# ---------------------------------------------------------------------------------------------------------------

BEEP_HZ, BEEP_MS = 1000, 510
FRAME = 240  # A-law bytes per 30 ms packet, as in sipp's recording


def _alaw(sample: int) -> int:
    """G.711 A-law of a 16-bit linear sample (ITU-T G.711; 0 → 0xD5, the silence byte)."""
    pcm = sample >> 3
    if pcm >= 0:
        mask = 0xD5
    else:
        mask, pcm = 0x55, -pcm - 1
    for seg, end in enumerate((0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)):
        if pcm <= end:
            break
    else:
        return 0x7F ^ mask
    mantissa = (pcm >> 1) & 0x0F if seg < 2 else (pcm >> seg) & 0x0F
    return ((seg << 4) | mantissa) ^ mask


def write_beeping_machine_pcap(path: Path, silence_s: float = 60.0) -> tuple[Path, float]:
    """An answering machine: sipp's 7 s recording as its greeting, a 1 kHz beep, then silence (it records) for
    as long as the call may last. Returns the path and the seconds from the answer to the end of the beep."""
    speech = _speech_payloads()
    frames = BEEP_MS // 30  # 30 ms packets
    tone = bytes(_alaw(round(12000 * math.sin(2 * math.pi * BEEP_HZ * i / 8000))) for i in range(frames * FRAME))
    beep = [tone[i:i + FRAME] for i in range(0, len(tone), FRAME)]
    silence = [bytes([ALAW_SILENCE]) * FRAME] * round(silence_s * 8000 / FRAME)
    write_pcap(path, _packets(speech + beep + silence))
    greeting = sum(len(p) for p in speech) / 8000
    return path, greeting + len(beep) * FRAME / 8000


class BeepingMachineNetwork(PstnNetwork):
    """PstnNetwork whose answering machines (numbers ending 8-9) beep after their greeting and then stay silent."""

    beep_ends_after: float = 0.0  # seconds from the answer

    def _scenario(self, workdir: Path) -> Path:
        person = write_person_pcap(workdir / "person.pcap")
        machine, self.beep_ends_after = write_beeping_machine_pcap(workdir / "machine.pcap")
        path = workdir / f"{self.name}.xml"
        path.write_text(render("pstn_sim.xml", ring_ms=max(1, self.ring_ms), person_pcap=person,
                               machine_pcap=machine))
        return path


async def test_an_answering_machine_gets_the_campaigns_message_after_the_beep_and_no_agent_is_offered_it(
    outbound_app: CallcoreApp, tmp_path: Path
):
    app = outbound_app
    assert app.dialer is not None
    run = app.dialer.run_of("voicemail")
    cfg = run.config
    assert cfg.amd.enabled and cfg.amd.machine_action == "message"
    message = [f"sound:{m}" for m in cfg.amd.machine_message]
    machine = number(78)  # ends in 8: an answering machine with a long greeting
    await load_leads(app, tmp_path, "voicemail", [machine], zone_at(range(9, 20)))
    app.acd.login("agent01")  # ready all along: the machine must not be put through to her
    with AgentPhone(1, hangup_after_ms=2000) as anna, BeepingMachineNetwork(ring_ms=800) as network:
        await app.dialer.start("voicemail")
        await wait_until(lambda: run.dialed >= 1, timeout=10, what="the attempt")
        await wait_until(lambda: run.attempts == {} and app.runtime.live_calls == 0, timeout=60,
                         what="the machine's call to end")
        await asyncio.sleep(2)
        assert run.dialed == 1 and network.dialled() == [machine]
        assert anna.stats().get("IncomingCall(C)", 0) == 0  # never offered to the agent
    assert app.acd.agents["agent01"].state == "ready"
    await app.writer.flush()
    row = dict(await app.pool.fetchrow(
        "SELECT call_id, outcome, abandoned, agent_id, amd_status, amd_cause, connect_delay_seconds, started_at, "
        "ended_at, disposition FROM lead_attempts WHERE campaign = 'voicemail'"))
    assert (row["outcome"], row["amd_status"], row["abandoned"], row["agent_id"], row["connect_delay_seconds"]) == (
        "machine", "MACHINE", False, None, None), row
    assert row["disposition"] == "machine_message_left"  # the whole message was played
    assert await app.pool.fetchval("SELECT status FROM leads WHERE number = $1", machine) == "exhausted"
    assert await app.pool.fetchval("SELECT count(*) FROM agent_events WHERE call_id = $1", row["call_id"]) == 0

    events = await events_of(app, row["call_id"])
    types = [e["type"] for e in events]
    assert "queued" not in types and "overflow" not in types, types  # never went to the ACD
    started = [e for e in events if e["type"] == "playback_started"]
    finished = [e for e in events if e["type"] == "playback_finished"]
    assert [e["payload"]["media"] for e in started] == message, types  # the campaign's message, not compliance
    assert [(e["payload"]["media"], e["payload"]["state"]) for e in finished] == [(m, "done") for m in message]
    # After the beep: the greeting (7.1 s) and the beep (0.5 s) are over before the message starts, and it does
    # not wait for ever after it.
    answered = next((e["occurred_at"] for e in events if e["type"] == "answered"),
                    row["started_at"] + timedelta(milliseconds=network.ring_ms))
    offset = (started[0]["occurred_at"] - answered).total_seconds()
    assert offset >= network.beep_ends_after - 0.25, (
        f"the message started {offset:.2f} s after the answer, before the beep ended ({network.beep_ends_after:.2f}"
        f" s): the machine records only what comes after its beep")
    assert offset <= network.beep_ends_after + 6.0, f"the message started {offset:.2f} s after the answer"
    # Then callcore hung up: the whole message was played first, and nobody else ended the call.
    hangups = [e for e in events if e["type"] == "hangup"]
    assert [e["payload"]["by"] for e in hangups] == ["callcore"], hangups
    assert hangups[0]["occurred_at"] >= finished[-1]["occurred_at"]
    assert row["ended_at"] >= hangups[0]["occurred_at"]
