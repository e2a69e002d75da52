"""The retention job against a real PostgreSQL with scripted calls, events, leads and agent history."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from callcore.events import AgentEvent, CallEvent
from callcore.ops.config import RetentionSettings
from callcore.ops.retention import (
    AriRecordingDeleter,
    Pseudonyms,
    Scrubber,
    load_salt,
    numbers_pattern,
    run_retention,
    safe_recording_name,
)
from callcore.store.writer import EventWriter
from tests.unit.ops.fakes import FakeDeleter

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
SALT = b"test-salt-0123456789abcdef"
JAN = "+31612345678"
CALLEE = "31687654321"
SETTINGS = RetentionSettings(recordings_days=90, personal_data_days=180, call_events_days=365,
                             agent_events_days=365, personal_variables=["customer_name"], batch_size=2)


def cid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


A, B, C, D, E, F = (cid(i) for i in range(1, 7))


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def call(call_id: uuid.UUID, age: float, *, caller: str | None = JAN, name: str | None = "Jan Jansen",
         recording: str | None = None, outbound: str | None = None) -> list[CallEvent]:
    t = days_ago(age)
    if outbound:
        start = {"direction": "outbound", "endpoint": f"PJSIP/{outbound}@trunk", "caller_number": "+3185000000"}
    else:
        start = {"direction": "inbound", "did": "1000", "caller_number": caller, "caller_name": name,
                 "channel_name": "PJSIP/trunk-00000001"}
    events = [CallEvent(call_id, "call_started", t, "ch-" + str(call_id)[-4:], start),
              CallEvent(call_id, "answered", t + timedelta(seconds=2)),
              CallEvent(call_id, "variables_set", t + timedelta(seconds=5), data={"customer_name": "Jan", "lang": "nl"})]
    if caller:
        events.append(CallEvent(call_id, "callback_requested", t + timedelta(seconds=6),
                                data={"number": caller, "queue": "sales", "context": {"customer_name": "Jan"}}))
    if recording:
        events += [CallEvent(call_id, "recording_started", t + timedelta(seconds=10),
                             data={"name": recording, "format": "wav", "path": f"/var/spool/asterisk/recording/"
                                                                              f"{recording}.wav"}),
                   CallEvent(call_id, "recording_stopped", t + timedelta(seconds=60),
                             data={"name": recording, "format": "wav", "duration_seconds": 50.0, "state": "done"})]
    events.append(CallEvent(call_id, "call_ended", t + timedelta(seconds=90), data={"disposition": "answered"}))
    return events


async def script(pool: Any) -> None:
    writer = EventWriter(pool, batch_max=100, flush_interval=0.01)
    await writer.start()
    for ev in [*call(A, 400, recording=f"{A}-1"), *call(B, 200), *call(C, 10), *call(D, 200, outbound=CALLEE),
               *call(E, 100, caller=None, name=None, recording=f"{E}-1"),
               *call(F, 30, caller=None, name=None, recording=f"{F}-1")]:
        writer.emit(ev)
    for agent, age, state in [("agent01", 500, "ready"), ("agent01", 400, "logged_out"), ("agent02", 800, "ready"),
                              ("agent01", 5, "ready")]:
        writer.emit(AgentEvent(agent, state, days_ago(age)))
    await writer.close()
    async with pool.acquire() as conn:
        for number, status, age in [(JAN, "done", 200), ("+31611111111", "pending", 300), ("+31622222222", "done", 10)]:
            await conn.execute(
                "INSERT INTO leads (campaign, number, timezone, timezones, tz_source, status, name, fields,"
                " created_at, updated_at) VALUES ('sales', $1, 'Europe/Amsterdam', '{Europe/Amsterdam}', 'number',"
                " $2, 'Jan', '{\"city\": \"Utrecht\"}'::jsonb, $3, $3)", number, status, days_ago(age))
        await conn.execute(
            "INSERT INTO lead_attempts (attempt_id, campaign, number, call_id, started_at, outcome, abandoned)"
            " VALUES ($1, 'sales', $2, $3, $4, 'human', false), ($5, 'sales', '+31622222222', NULL, $6, 'busy', false)",
            uuid.uuid4(), "+" + CALLEE, D, days_ago(200), uuid.uuid4(), days_ago(10))
        await conn.execute(
            "INSERT INTO scheduled_callbacks (campaign, number, due_at, due_local, timezone, status, note, updated_at)"
            " VALUES ('sales', $1, $2, 'x', 'Europe/Amsterdam', 'done', 'call after 5, wife answers', $2)",
            JAN, days_ago(250))
        await conn.execute("INSERT INTO dnc_entries (number, reason, source, added_at) VALUES ($1, 'asked', 'cli', $2)",
                           JAN, days_ago(600))


async def snapshot(pool: Any) -> dict[str, Any]:
    async with pool.acquire() as conn:
        return {
            "calls": {r["call_id"]: dict(r) for r in await conn.fetch("SELECT * FROM calls")},
            "events": sorted((str(r["call_id"]), r["type"], str(r["payload"])) for r in
                             await conn.fetch("SELECT call_id, type, payload FROM call_events")),
            "leads": sorted(tuple(r) for r in await conn.fetch("SELECT id, number, name, fields::text, status FROM leads")),
            "attempts": sorted(tuple(r) for r in await conn.fetch("SELECT id, number FROM lead_attempts")),
            "callbacks": sorted(tuple(r) for r in await conn.fetch("SELECT id, number, note FROM scheduled_callbacks")),
            "agent_events": sorted(tuple(r) for r in await conn.fetch("SELECT agent_id, state FROM agent_events")),
            "dnc": sorted(tuple(r) for r in await conn.fetch("SELECT number, reason FROM dnc_entries")),
        }


async def events_of(pool: Any, call_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    rows = await pool.fetch("SELECT type, payload FROM call_events WHERE call_id = $1 ORDER BY id", call_id)
    return {r["type"]: r["payload"] for r in rows}


async def test_a_run_deletes_and_anonymises_what_is_past_its_limit_and_nothing_else(pg_pool):
    await script(pg_pool)
    deleter = FakeDeleter()
    report = await run_retention(pg_pool, SETTINGS, salt=SALT, deleter=deleter, now=NOW)
    assert report.ok, report.format()
    marker = Pseudonyms(SALT).marker(JAN)
    # Recordings: A's (400 d) and E's (100 d) are past 90 days; F's (30 d) is not.
    assert sorted(deleter.deleted) == sorted([f"{A}-1", f"{E}-1"])
    assert report.recordings.deleted == 2
    e_events = await pg_pool.fetch("SELECT payload FROM call_events WHERE call_id = $1 AND type = 'recording_deleted'",
                                   E)
    assert [r["payload"] for r in e_events] == [{"name": f"{E}-1", "reason": "retention", "existed": True}]
    calls = {r["call_id"]: r for r in await pg_pool.fetch("SELECT * FROM calls")}
    # A (400 days) is gone with its events; the others stay.
    assert set(calls) == {B, C, D, E, F}
    assert await pg_pool.fetchval("SELECT count(*) FROM call_events WHERE call_id = $1", A) == 0
    assert report.counts["calls_deleted"] == 1 and report.counts["events_deleted"] == 8
    # B (200 days): the caller is a marker, the name gone, the personal variable redacted, the rest intact.
    assert calls[B]["caller_number"] == marker and calls[B]["caller_name"] is None
    assert calls[B]["variables"] == {"customer_name": "anon:redacted", "lang": "nl"}
    assert calls[B]["did"] == "1000" and calls[B]["answered_at"] is not None and calls[B]["disposition"] == "answered"
    b = await events_of(pg_pool, B)
    assert b["call_started"]["caller_number"] == marker and b["call_started"]["caller_name"] is None
    assert b["call_started"]["channel_name"] == "PJSIP/trunk-00000001"
    assert b["callback_requested"] == {"number": marker, "queue": "sales", "context": {"customer_name": "anon:redacted"}}
    assert JAN not in str(await pg_pool.fetch("SELECT payload FROM call_events WHERE call_id = $1", B))
    # C (10 days) is untouched.
    assert calls[C]["caller_number"] == JAN and calls[C]["caller_name"] == "Jan Jansen"
    assert {c for c, r in calls.items() if r["anonymised_at"] is not None} == {B, D}
    # D (outbound, 200 days): the callee's number in the dial string; our own caller ID stays.
    callee_marker = Pseudonyms(SALT).marker(CALLEE)
    assert calls[D]["caller_number"] == "+3185000000"
    assert (await events_of(pg_pool, D))["call_started"]["endpoint"] == f"PJSIP/{callee_marker}@trunk"
    # Leads: the finished old one is pseudonymised; the pending one and the recent one are not.
    leads = {r["status"] + str(r["created_at"].date()): r for r in await pg_pool.fetch("SELECT * FROM leads")}
    old_done = leads["done" + str(days_ago(200).date())]
    assert old_done["number"] == Pseudonyms(SALT).pseudo_e164(JAN) and old_done["number"].startswith("+999")
    assert old_done["name"] is None and old_done["fields"] == {}
    assert leads["pending" + str(days_ago(300).date())]["number"] == "+31611111111"
    assert leads["done" + str(days_ago(10).date())]["name"] == "Jan"
    attempts = {r["number"] for r in await pg_pool.fetch("SELECT number FROM lead_attempts")}
    assert attempts == {Pseudonyms(SALT).marker("+" + CALLEE), "+31622222222"}
    cb = await pg_pool.fetchrow("SELECT number, note FROM scheduled_callbacks")
    assert cb["number"].startswith("+999") and cb["note"] == ""
    # Agent history: old events go, but each agent's latest stays.
    assert sorted(tuple(r) for r in await pg_pool.fetch("SELECT agent_id, state FROM agent_events")) == [
        ("agent01", "ready"), ("agent02", "ready")]
    # The do-not-call entry is never touched.
    assert await pg_pool.fetchval("SELECT number FROM dnc_entries") == JAN
    assert report.counts == {"calls_anonymised": 3, "events_anonymised": 9, "leads_anonymised": 1,
                             "attempts_anonymised": 1, "callbacks_anonymised": 1, "calls_deleted": 1,
                             "events_deleted": 8, "agent_events_deleted": 2}


async def test_a_second_run_finds_nothing_left_to_do(pg_pool):
    await script(pg_pool)
    await run_retention(pg_pool, SETTINGS, salt=SALT, deleter=FakeDeleter(), now=NOW)
    before = await snapshot(pg_pool)
    deleter = FakeDeleter()
    report = await run_retention(pg_pool, SETTINGS, salt=SALT, deleter=deleter, now=NOW)
    assert deleter.deleted == [] and report.recordings.found == []
    assert report.counts == {}
    assert await snapshot(pg_pool) == before


async def test_a_dry_run_reports_the_counts_of_a_real_run_and_changes_nothing(pg_pool):
    await script(pg_pool)
    before = await snapshot(pg_pool)
    deleter = FakeDeleter()
    dry = await run_retention(pg_pool, SETTINGS.model_copy(update={"dry_run": True}), salt=SALT, deleter=deleter,
                              now=NOW)
    assert deleter.deleted == [] and await snapshot(pg_pool) == before
    assert sorted(dry.recordings.found) == sorted([f"{A}-1", f"{E}-1"])
    real = await run_retention(pg_pool, SETTINGS, salt=SALT, deleter=FakeDeleter(), now=NOW)
    # Exact, but for the recording_deleted events only a real run writes (and then deletes with their call).
    assert {**dry.counts, "events_deleted": dry.counts["events_deleted"] + 1} == real.counts
    assert "would delete" in dry.format() and "dry run" in dry.format()


async def test_a_recording_that_cannot_be_deleted_keeps_its_call_until_a_later_run(pg_pool):
    await script(pg_pool)
    failing = FakeDeleter(fail={f"{A}-1"})
    report = await run_retention(pg_pool, SETTINGS, salt=SALT, deleter=failing, now=NOW)
    assert not report.ok and f"{A}-1" in report.recordings.failed
    assert "Asterisk unreachable" in report.format()
    assert report.counts["calls_kept_for_their_recordings"] == 1 and "calls_deleted" not in report.counts
    assert await pg_pool.fetchval("SELECT count(*) FROM calls WHERE call_id = $1", A) == 1
    gone = FakeDeleter(gone={f"{A}-1"})  # meanwhile someone removed the file: counts as done
    report = await run_retention(pg_pool, SETTINGS, salt=SALT, deleter=gone, now=NOW)
    assert report.ok and report.recordings.missing == 1 and report.counts["calls_deleted"] == 1


async def test_only_the_configured_steps_run(pg_pool):
    await script(pg_pool)
    deleter = FakeDeleter()
    report = await run_retention(pg_pool, RetentionSettings(recordings_days=90), salt=None, deleter=deleter, now=NOW)
    assert sorted(deleter.deleted) == sorted([f"{A}-1", f"{E}-1"]) and report.counts == {}
    assert await pg_pool.fetchval("SELECT caller_number FROM calls WHERE call_id = $1", B) == JAN
    with pytest.raises(ValueError, match="salt"):
        await run_retention(pg_pool, RetentionSettings(personal_data_days=30), salt=None, deleter=deleter, now=NOW)


async def test_markers_keep_repeat_callers_together_and_depend_on_the_salt():
    p = Pseudonyms(SALT)
    assert p.marker(JAN) == p.marker(JAN) != p.marker("+31600000000")
    assert p.marker(JAN) != Pseudonyms(b"other").marker(JAN)
    assert p.marker(JAN).startswith("anon:") and len(p.marker(JAN)) == 21
    fixed = Pseudonyms(fixed="anon:0123456789abcdef")
    assert fixed.marker("anything") == "anon:0123456789abcdef"
    assert len(p.pseudo_e164(JAN)) == 16 and p.pseudo_e164(JAN) == p.pseudo_e164(JAN) != p.pseudo_e164(JAN, 1)


def test_the_scrubber_replaces_numbers_only_as_whole_numbers():
    scrub = Scrubber(Pseudonyms(fixed="anon:x"), numbers_pattern(["+31612345678", "31612345678", "0612345678"]),
                     personal=False)
    assert scrub.text("PJSIP/0612345678@trunk") == "PJSIP/anon:x@trunk"
    assert scrub.text("+31612345678 and 31612345678") == "anon:x and anon:x"
    assert scrub.text("106123456789") == "106123456789"  # inside a longer number: not this one
    assert scrub.value({"a": ["0612345678", 5, None]}) == {"a": ["anon:x", 5, None]}


def test_recording_names_sent_to_asterisk_are_checked():
    assert safe_recording_name(f"{uuid.uuid4()}-1") and safe_recording_name("voicemail/vm-42")
    for bad in ("../etc/passwd", "/abs", "a/../b", "", "name with space", None, "a\nb"):
        assert not safe_recording_name(bad), bad


async def test_an_unsafe_recording_name_is_never_sent_to_asterisk(pg_pool):
    writer = EventWriter(pg_pool, flush_interval=0.01)
    await writer.start()
    for ev in call(A, 100, caller=None, name=None, recording="../../etc/asterisk/ari"):
        writer.emit(ev)
    await writer.close()
    deleter = FakeDeleter()
    report = await run_retention(pg_pool, RetentionSettings(recordings_days=90), salt=None, deleter=deleter, now=NOW)
    assert deleter.deleted == [] and "unsafe recording name" in report.recordings.failed["../../etc/asterisk/ari"]


async def test_the_ari_deleter_maps_404_to_already_gone(fake_ari, ari):
    deleter = AriRecordingDeleter(ari)
    assert await deleter.delete("nope") is False


def test_the_salt_is_created_private_once_and_refused_when_readable(tmp_path):
    import os

    settings = RetentionSettings(personal_data_days=30)
    assert load_salt(settings, tmp_path, create=False) is None
    salt = load_salt(settings, tmp_path)
    assert salt and load_salt(settings, tmp_path) == salt and len(salt) == 64
    path = tmp_path / "retention.salt"
    assert path.stat().st_mode & 0o777 == 0o600
    os.chmod(path, 0o644)
    from callcore.ops.secrets import SecretFileError

    with pytest.raises(SecretFileError):
        load_salt(settings, tmp_path)
    custom = RetentionSettings(salt_file="salts/s")
    assert load_salt(custom, tmp_path / "x", base=tmp_path) and (tmp_path / "salts" / "s").exists()
