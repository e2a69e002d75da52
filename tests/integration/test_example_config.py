"""The shipped example (config/callcore.yaml: a Dutch telecom center) on the real sandbox, path by path."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from callcore.app import CallcoreApp
from callcore.config import load_config
from callcore.events import utcnow
from callcore.ivr.model import Schedule
from callcore.ivr.registry import CODE_FLOWS
from callcore.ivr.report import ivr_report
from tests.fakes.crm import FakeCrm
from tests.integration.conftest import start_app
from tests.sip import AgentPhone, Dtmf, PstnPhone, run_caller
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "callcore.yaml"
GOLD_CALLER = "+31612345678"  # known to the fake CRM as account 123456, segment gold
ALWAYS_OPEN = {"timezone": "Europe/Amsterdam", "weekly": {d: ["00:00-24:00"] for d in
                                                          ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}
NEVER_OPEN = {"timezone": "Europe/Amsterdam", "weekly": {}}




@pytest.fixture
async def crm():
    server = await FakeCrm().start()
    try:
        yield server
    finally:
        await server.stop()


async def example_app(tmp_path: Path, crm_url: str, office: dict, edit=lambda text: text) -> CallcoreApp:
    path = tmp_path / "callcore.yaml"
    path.write_text(edit(EXAMPLE.read_text().replace("http://127.0.0.1:8099", crm_url)))
    config = load_config(path, known_flows=set(CODE_FLOWS))
    # Business hours are the one thing a test cannot take from the clock.
    config = config.model_copy(update={"schedules": {"office": Schedule.model_validate(office)},
                                       "state_dir": tmp_path / "state"})
    return await start_app(config)


@pytest.fixture
async def open_center(asterisk, pg_dsn, tmp_path, crm, monkeypatch):
    monkeypatch.setenv("CALLCORE_DATABASE_URL", pg_dsn)
    app = await example_app(tmp_path, crm.url, ALWAYS_OPEN)
    try:
        yield app
    finally:
        await asyncio.wait_for(app.stop(drain_seconds=2), 30)


async def last_call(app: CallcoreApp) -> tuple[dict, list[tuple[str, dict]]]:
    await wait_until(lambda: app.runtime.live_calls == 0, what="the call to end")
    await app.writer.flush()
    row = await app.pool.fetchrow("SELECT * FROM calls ORDER BY started_at DESC LIMIT 1")
    events = await app.pool.fetch("SELECT type, payload FROM call_events WHERE call_id = $1 ORDER BY id", row["call_id"])
    return row, [(e["type"], e["payload"]) for e in events]


def path_of(events) -> list[str]:
    return [p["node"] for t, p in events if t == "ivr_node_entered"]


def media_of(events) -> list[str]:
    return [p["media"] for t, p in events if t == "playback_started"]


async def test_gold_customer_who_wants_to_cancel_is_greeted_as_gold_and_reaches_retention_with_priority(
    open_center: CallcoreApp, crm: FakeCrm
):
    with AgentPhone(4, hangup_after_ms=1000) as retention_desk:
        result = await asyncio.to_thread(
            run_caller, "1000", [Dtmf("9", pause_before_ms=9000)], caller=GOLD_CALLER, bye_timeout_ms=40_000,
            timeout=70)
        result.check()
        await wait_until(lambda: retention_desk.stats().get("SuccessfulCall(C)") == 1, timeout=5, what="agent04")
    row, events = await last_call(open_center)
    assert path_of(events) == ["pick_language", "dutch", "check_hours", "welcome", "identify", "by_segment",
                               "gold_welcome", "gold_priority", "main_menu", "retention", "retention_queue"]
    assert crm.requests[0] == {"caller": GOLD_CALLER}
    assert row["variables"]["segment"] == "gold" and row["variables"]["priority"] == "10"
    assert row["variables"]["lang"] == "nl"
    assert "sound:callcore/gold-welcome" in media_of(events) and "sound:callcore/retention-intro" in media_of(events)
    ended = next(p for t, p in events if t == "ivr_ended")
    assert ended["outcome"] == "queue" and ended["queue"] == "retention"


async def test_balance_self_service_reads_the_amount_in_dutch_and_ends_in_the_ivr(open_center: CallcoreApp):
    digits = [Dtmf("3", pause_before_ms=5000), Dtmf("1", pause_before_ms=1500),
              Dtmf("123456#", pause_before_ms=2500)]
    result = await asyncio.to_thread(run_caller, "1000", digits, bye_timeout_ms=60_000, timeout=90)
    result.check()
    row, events = await last_call(open_center)
    path = path_of(events)
    assert path[-5:] == ["balance_account", "lookup_balance", "say_balance", "balance_done", "goodbye"]
    assert ["sound:callcore/your-balance-is", "number:42", "sound:callcore/euro"] == [
        m for m in media_of(events) if m in ("sound:callcore/your-balance-is", "number:42", "sound:callcore/euro")]
    assert next(p for t, p in events if t == "ivr_ended")["outcome"] == "hangup"  # contained


async def test_operator_option_transfers_the_caller_through_the_trunk(open_center: CallcoreApp):
    with PstnPhone(hangup_after_ms=1000) as reception:
        result = await asyncio.to_thread(
            run_caller, "1000", [Dtmf("0", pause_before_ms=5000)], bye_timeout_ms=40_000, timeout=70)
        result.check()
        await wait_until(lambda: reception.stats().get("SuccessfulCall(C)") == 1, timeout=5, what="reception")
    _, events = await last_call(open_center)
    assert path_of(events)[-2:] == ["operator", "operator_transfer"]
    originated = next(p for t, p in events if t == "originated")
    assert originated["endpoint"] == "PJSIP/+31201234567@trunk"
    assert "bridged" in [t for t, _ in events]
    assert next(p for t, p in events if t == "ivr_ended")["outcome"] == "transfer"


async def test_callback_option_books_a_callback_and_the_caller_is_called_back_after_hanging_up(
    open_center: CallcoreApp
):
    app = open_center
    with AgentPhone(1, hangup_after_ms=8000) as a1, AgentPhone(2, hangup_after_ms=8000) as a2, \
            AgentPhone(3, hangup_after_ms=8000) as a3, PstnPhone() as callers_line:
        result = await asyncio.to_thread(
            run_caller, "1000", [Dtmf("#", pause_before_ms=5000)], bye_timeout_ms=40_000, timeout=70)
        result.check()
        await wait_until(lambda: [r.status for r in app.web_callbacks.requests.values()] == ["done"], timeout=60,
                         what="the caller to be called back and put through to an agent")

        def agents_done() -> int:
            return sum(p.stats().get("SuccessfulCall(C)", 0) for p in (a1, a2, a3))

        await wait_until(lambda: callers_line.stats().get("SuccessfulCall(C)") == 1 and agents_done() == 1,
                         timeout=30, what="the callback's conversation with one agent to end")
    await wait_until(lambda: app.runtime.live_calls == 0, what="the calls to end")
    await app.writer.flush()
    ivr_call = await app.pool.fetchrow("SELECT * FROM calls WHERE did = '1000' ORDER BY started_at DESC LIMIT 1")
    events = [(e["type"], e["payload"]) for e in await app.pool.fetch(
        "SELECT type, payload FROM call_events WHERE call_id = $1 ORDER BY id", ivr_call["call_id"])]
    assert path_of(events)[-2:] == ["offer_callback", "goodbye"]
    request = next(p for t, p in events if t == "callback_requested")
    assert request["number"] == "+31201234567" and request["queue"] == "general"
    stored = await app.pool.fetchrow("SELECT * FROM web_callbacks WHERE id = $1::uuid", request["callback_id"])
    assert stored["status"] == "done" and stored["attempts"] == 1 and stored["requested_by"] == "ivr:telco/offer_callback"
    # The callback was dialled only after the caller had hung up (never onto the line the caller was still on).
    placed = await app.pool.fetch("SELECT started_at, did FROM calls WHERE direction = 'outbound'")
    assert [p["did"] for p in placed] == ["+31201234567"] and placed[0]["started_at"] >= ivr_call["ended_at"]
    connected = await app.pool.fetch("SELECT payload FROM call_events WHERE type = 'connected' AND occurred_at > $1",
                                     ivr_call["ended_at"])
    assert [c["payload"]["agent"] for c in connected] in (["agent01"], ["agent02"], ["agent03"])


async def test_english_line_after_hours_takes_a_voicemail_in_english(asterisk, pg_dsn, tmp_path, crm, monkeypatch):
    monkeypatch.setenv("CALLCORE_DATABASE_URL", pg_dsn)
    app = await example_app(tmp_path, crm.url, NEVER_OPEN)
    try:
        # "#" ends the message, 3 s after the beep.
        result = await asyncio.to_thread(
            run_caller, "1001", [Dtmf("#", pause_before_ms=16_000)], bye_timeout_ms=40_000, timeout=70)
        result.check()
        row, events = await last_call(app)
        assert path_of(events) == ["pick_language", "english", "check_hours", "closed", "voicemail",
                                   "message_saved"]
        assert row["variables"]["lang"] == "en"
        rec = next(p for t, p in events if t == "ivr_recording")
        assert rec["ok"] is True
        stored = {r.name for r in await app.ari.recordings.list_stored()}
        assert rec["name"] in stored
        await app.ari.recordings.delete_stored(rec["name"])
    finally:
        await app.stop(drain_seconds=2)


async def test_a_voice_message_ended_by_hanging_up_is_kept_and_recorded(asterisk, pg_dsn, tmp_path, crm, monkeypatch):
    monkeypatch.setenv("CALLCORE_DATABASE_URL", pg_dsn)
    app = await example_app(tmp_path, crm.url, NEVER_OPEN)
    try:
        # No "#": the caller hangs up ≈ 2 s after the beep, as most callers end a message (the prompts before it
        # end ≈ 23 s in; sipp sends no audio, and Asterisk would end a silent recording itself ≈ 4 s later).
        result = await asyncio.to_thread(run_caller, "1001", [], hangup_after_ms=25_000, bye_timeout_ms=45_000,
                                         timeout=70)
        result.check()
        row, events = await last_call(app)
        assert path_of(events)[:5] == ["pick_language", "english", "check_hours", "closed", "voicemail"]
        types = [t for t, _ in events]
        assert types.index("hangup") < types.index("ivr_recording")  # ended by the caller's hangup, still recorded
        rec = next(p for t, p in events if t == "ivr_recording")
        assert rec["ok"] is True and rec["name"] in {r.name for r in await app.ari.recordings.list_stored()}
        await app.ari.recordings.delete_stored(rec["name"])
    finally:
        await app.stop(drain_seconds=2)


async def test_ivr_report_tells_containment_paths_options_and_lookups(asterisk, pg_dsn, tmp_path, crm, monkeypatch):
    monkeypatch.setenv("CALLCORE_DATABASE_URL", pg_dsn)
    app = await example_app(tmp_path, crm.url, ALWAYS_OPEN)
    since = utcnow() - timedelta(seconds=1)
    try:
        # One self-service balance call (contained) and one caller who hangs up in the main menu (abandoned).
        contained = asyncio.to_thread(
            run_caller, "1000", [Dtmf("3", pause_before_ms=5000), Dtmf("1", pause_before_ms=1500),
                                 Dtmf("123456#", pause_before_ms=2500)], bye_timeout_ms=60_000, timeout=90)
        (await contained).check()
        (await asyncio.to_thread(run_caller, "1000", [], hangup_after_ms=10_000, timeout=30)).check()
        await wait_until(lambda: app.runtime.live_calls == 0, what="calls to end")
        await app.writer.flush()
        (report,) = await ivr_report(app.pool, since, utcnow() + timedelta(seconds=1))
        assert report.flow == "telco" and report.calls == 2
        assert report.contained == 1 and report.abandoned == 1 and report.containment_rate == 0.5
        assert report.abandoned_at == {"main_menu": 1}
        assert report.options["main_menu"] == {"3": 1} and report.options["billing_menu"] == {"1": 1}
        assert report.lookups["identify"]["requests"] == 2 and report.lookups["identify"]["failures"] == 2
        assert report.lookups["lookup_balance"]["failures"] == 0
        assert report.avg_seconds_in_ivr and report.avg_seconds_in_ivr > 5
        assert any("say_balance" in path for path, _ in report.top_paths)
    finally:
        await app.stop(drain_seconds=2)
    out = subprocess.run(
        [sys.executable, "-m", "callcore.cli", "report", "ivr", "-c", str(tmp_path / "callcore.yaml"),
         "--since", since.isoformat()],
        capture_output=True, text=True, timeout=60, cwd=REPO, env={**__import__("os").environ,
                                                                   "CALLCORE_DATABASE_URL": pg_dsn})
    assert out.returncode == 0, out.stderr
    assert "flow telco: 2 calls, containment 50% (1)" in out.stdout
    assert "abandoned at: main_menu 1" in out.stdout
