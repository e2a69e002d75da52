"""`callcore gdpr forget NUMBER` against a real PostgreSQL: every trace goes, statistics and the DNC entry stay."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from callcore.cli import main
from callcore.events import CallEvent
from callcore.ops.gdpr import ForgetError, forget_number, number_variants
from callcore.ops.retention import Pseudonyms
from callcore.store.writer import EventWriter
from tests.unit.ops.fakes import FakeDeleter

JAN = "+31612345678"
DIGITS = "612345678"  # in every spelling of Jan's number
OTHER = "+31699999999"
SALT = b"test-salt-0123456789abcdef"
T0 = datetime.now(timezone.utc) - timedelta(days=3)
G, H, I, J, K = (uuid.UUID(int=0x100 + i) for i in range(5))


def ev(call_id: uuid.UUID, type_: str, data: dict[str, Any], seconds: float = 0) -> CallEvent:
    return CallEvent(call_id, type_, T0 + timedelta(seconds=seconds), None, data)


async def script(pool: Any) -> None:
    marker = Pseudonyms(SALT).marker("0612345678")
    events = [
        # G: Jan calls in (the trunk presents the national form), is recorded, gives his name to the IVR.
        ev(G, "call_started", {"direction": "inbound", "did": "1000", "caller_number": "0612345678",
                               "caller_name": "Jan Jansen"}),
        ev(G, "variables_set", {"customer_name": "Jan", "lang": "nl"}, 1),
        ev(G, "recording_started", {"name": f"{G}-1", "format": "wav"}, 2),
        ev(G, "recording_stopped", {"name": f"{G}-1", "format": "wav"}, 3),
        ev(G, "call_ended", {"disposition": "answered"}, 4),
        # H: the dialer calls Jan (a lead attempt names the call); recorded.
        ev(H, "call_started", {"direction": "outbound", "endpoint": "PJSIP/31612345678@trunk",
                               "caller_number": "+31850000000"}),
        ev(H, "ivr_recording", {"name": "vm-h", "ok": True}, 1),
        ev(H, "call_ended", {}, 2),
        # I: someone else's call, transferred to Jan's number: the mention goes, the call stays the other's.
        ev(I, "call_started", {"direction": "inbound", "did": "1000", "caller_number": OTHER, "caller_name": "Piet"}),
        ev(I, "recording_started", {"name": f"{I}-1"}, 1),
        ev(I, "party_left", {"number": "0031612345678", "cause": 16}, 2),
        ev(I, "call_ended", {}, 3),
        # J: unrelated.
        ev(J, "call_started", {"direction": "inbound", "did": "1000", "caller_number": OTHER, "caller_name": "Piet"}),
        # K: an old call of Jan's the retention job already pseudonymised.
        ev(K, "call_started", {"direction": "inbound", "did": "1000", "caller_number": marker}),
        ev(K, "callback_requested", {"number": marker, "queue": "sales"}, 1),
    ]
    writer = EventWriter(pool, flush_interval=0.01)
    await writer.start()
    for e in events:
        writer.emit(e)
    await writer.close()
    async with pool.acquire() as conn:
        for campaign, status in (("sales", "pending"), ("winback", "done")):
            await conn.execute(
                "INSERT INTO leads (campaign, number, timezone, timezones, tz_source, status, name, fields)"
                " VALUES ($1, $2, 'Europe/Amsterdam', '{Europe/Amsterdam}', 'number', $3, 'Jan', $4::text::jsonb)",
                campaign, JAN, status, json.dumps({"email": "jan@example.nl"}))
        await conn.execute(
            "INSERT INTO leads (campaign, number, timezone, timezones, tz_source, status) VALUES"
            " ('sales', $1, 'Europe/Amsterdam', '{Europe/Amsterdam}', 'number', 'pending')", OTHER)
        await conn.execute(
            "INSERT INTO lead_attempts (attempt_id, campaign, number, call_id, started_at, outcome, abandoned,"
            " talk_seconds) VALUES ($1, 'sales', $2, $3, $4, 'human', false, 95.0)", uuid.uuid4(), JAN, H, T0)
        await conn.execute(
            "INSERT INTO scheduled_callbacks (campaign, number, due_at, due_local, timezone, note) VALUES"
            " ('sales', $1, now() + interval '1 day', 'tomorrow 10:00', 'Europe/Amsterdam', 'Jan prefers mornings')",
            JAN)
        await conn.execute("INSERT INTO dnc_entries (number, reason, source) VALUES ($1, 'asked', 'cli')", JAN)
        await conn.execute(
            "INSERT INTO idempotency_keys (owner, key, route, body_hash, status, response, expires_at) VALUES"
            " ('crm', 'k1', 'POST /calls', 'h', 201, $1::text::jsonb, now() + interval '1 day'),"
            " ('crm', 'k2', 'POST /calls', 'h', 201, '{\"number\": \"+31699999999\"}'::jsonb, now() + interval '1 day')",
            json.dumps({"number": JAN}))
        await conn.execute(
            "INSERT INTO webhook_outbox (webhook, event_id, event_type, payload) VALUES ('crm', $1, 'call.started',"
            " $2::text::jsonb)", uuid.uuid4(), json.dumps({"call": {"caller_number": "0612345678", "did": "1000"}}))


async def dump(pool: Any) -> dict[str, str]:
    out = {}
    for table in ("calls", "call_events", "leads", "lead_attempts", "scheduled_callbacks", "dnc_entries",
                  "idempotency_keys", "webhook_outbox", "web_callbacks"):
        rows = await pool.fetch(f"SELECT * FROM {table} ORDER BY 1")
        out[table] = json.dumps([{k: str(v) for k, v in dict(r).items()} for r in rows])
    return out


async def test_forget_removes_every_trace_but_the_do_not_call_entry(pg_pool):
    await script(pg_pool)
    deleter = FakeDeleter()
    report = await forget_number(pg_pool, JAN, salt=SALT, deleter=deleter, personal_variables=["customer_name"])
    assert report.ok, report.format()
    # Jan's recordings (as caller, as callee) are deleted; the other caller's call that mentions him is listed only.
    assert sorted(deleter.deleted) == sorted([f"{G}-1", "vm-h"])
    assert report.recordings.listed == [f"{I}-1"]
    after = await dump(pg_pool)
    leaks = {t for t, text in after.items() if DIGITS in text}
    assert leaks == {"dnc_entries"}, {t: after[t] for t in leaks}
    assert report.dnc_kept == 1
    old_marker = Pseudonyms(SALT).marker("0612345678")
    assert old_marker not in after["calls"] + after["call_events"]
    calls = {r["call_id"]: r for r in await pg_pool.fetch("SELECT * FROM calls")}
    marker = calls[G]["caller_number"]
    assert marker.startswith("anon:") and marker != old_marker
    # One marker for all of Jan's calls (KPIs still count him as one repeat caller), none derivable from the number.
    assert calls[K]["caller_number"] == marker
    assert calls[G]["caller_name"] is None and calls[G]["variables"] == {"customer_name": "anon:redacted", "lang": "nl"}
    assert calls[G]["disposition"] == "answered" and calls[G]["anonymised_at"] is not None
    # The other caller keeps his data; only the mention of Jan's number changed.
    assert calls[I]["caller_number"] == OTHER and calls[I]["caller_name"] == "Piet"
    party = await pg_pool.fetchval("SELECT payload FROM call_events WHERE call_id = $1 AND type = 'party_left'", I)
    assert party == {"number": marker, "cause": 16}
    assert calls[J]["caller_number"] == OTHER
    h_start = await pg_pool.fetchval("SELECT payload FROM call_events WHERE call_id = $1 AND type = 'call_started'", H)
    assert h_start["endpoint"] == f"PJSIP/{marker}@trunk" and h_start["caller_number"] == "+31850000000"
    # Leads lose number, name, fields; the pending one is cancelled; the other caller's lead is untouched.
    leads = {r["campaign"] + r["status"]: r for r in await pg_pool.fetch("SELECT * FROM leads WHERE name IS NULL"
                                                                          " AND number LIKE '+999%'")}
    assert set(leads) == {"salescancelled", "winbackdone"}
    assert all(r["fields"] == {} for r in leads.values())
    assert await pg_pool.fetchval("SELECT status FROM leads WHERE number = $1", OTHER) == "pending"
    attempt = await pg_pool.fetchrow("SELECT number, outcome, talk_seconds FROM lead_attempts")
    assert tuple(attempt) == (marker, "human", 95.0)
    cb = await pg_pool.fetchrow("SELECT number, note, status FROM scheduled_callbacks")
    assert cb["number"].startswith("+999") and cb["note"] == "" and cb["status"] == "cancelled"
    assert [r["key"] for r in await pg_pool.fetch("SELECT key FROM idempotency_keys")] == ["k2"]
    assert await pg_pool.fetchval("SELECT payload FROM webhook_outbox") == {"call": {"caller_number": marker,
                                                                                     "did": "1000"}}
    # Each deletion is on record, with its reason.
    deleted = await pg_pool.fetch("SELECT call_id, payload FROM call_events WHERE type = 'recording_deleted'")
    assert sorted((r["call_id"], r["payload"]["reason"]) for r in deleted) == sorted([(G, "gdpr"), (H, "gdpr")])
    assert report.counts == {"events": 6, "calls": 4, "leads_cancelled": 1, "leads": 2, "attempts": 1,
                             "callbacks": 1, "web_callbacks": 0, "web_callbacks_cancelled": 0, "callback_quota": 0,
                             "webhook_deliveries": 1, "api_replies": 1}
    text = report.format()
    assert "do-not-call entries kept: 1" in text and "recordings deleted: 2" in text


async def test_a_second_erasure_finds_nothing(pg_pool):
    await script(pg_pool)
    await forget_number(pg_pool, JAN, salt=SALT, deleter=FakeDeleter())
    again = await forget_number(pg_pool, "06-12345678", region="NL", salt=SALT, deleter=FakeDeleter())
    assert again.ok and again.recordings.found == [] and again.counts["calls"] == 0 and again.counts["leads"] == 0
    assert again.dnc_kept == 1


async def test_a_dry_run_changes_nothing(pg_pool):
    await script(pg_pool)
    before = await dump(pg_pool)
    deleter = FakeDeleter()
    report = await forget_number(pg_pool, JAN, salt=SALT, deleter=deleter, dry_run=True)
    assert deleter.deleted == [] and await dump(pg_pool) == before
    assert sorted(report.recordings.found) == sorted([f"{G}-1", "vm-h"]) and report.counts["calls"] == 4
    assert "dry run: nothing changed" in report.format()


async def test_when_a_recording_cannot_be_deleted_nothing_is_anonymised(pg_pool):
    await script(pg_pool)
    before = await dump(pg_pool)
    report = await forget_number(pg_pool, JAN, salt=SALT, deleter=FakeDeleter(fail={"vm-h"}))
    assert not report.ok and "nothing was anonymised" in (report.aborted or "")
    after = await dump(pg_pool)
    assert after["calls"] == before["calls"] and after["leads"] == before["leads"]
    # --skip-recordings: anonymise now, recordings listed for deletion by hand.
    deleter = FakeDeleter()
    report = await forget_number(pg_pool, JAN, salt=SALT, deleter=deleter, skip_recordings=True)
    assert report.ok and deleter.deleted == [] and "vm-h" in report.recordings.found
    assert DIGITS not in (await dump(pg_pool))["calls"]


def test_number_variants_cover_the_usual_spellings():
    e164, variants = number_variants("06-1234 5678", "NL")
    assert e164 == JAN
    assert set(variants) == {"+31612345678", "0031612345678", "31612345678", "0612345678"}
    assert variants[0] == "0031612345678"  # longest first
    assert number_variants("tel:+31 6 12345678")[0] == JAN
    for bad, why in (("12345", "too short"), ("06 12 ab", "not a phone number"), ("0612345678", "no country code")):
        with pytest.raises(ForgetError, match=why):
            number_variants(bad)


# ---- the commands ------------------------------------------------------------------------------------------------

def _config(tmp_path: Path, dsn: str) -> Path:
    path = tmp_path / "callcore.yaml"
    path.write_text(f"state_dir: state\nari: {{password: x, url: 'http://127.0.0.1:9'}}\ndatabase: {{url: '{dsn}'}}\n"
                    "retention:\n  personal_data_days: 30\n  call_events_days: 365\n  dry_run: false\n"
                    "campaigns: {}\n")
    return path


def test_cli_forget_needs_a_confirmation_and_reports_as_json(tmp_path, pg_dsn, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    config = _config(tmp_path, pg_dsn)
    assert main(["gdpr", "forget", JAN, "-c", str(config)]) == 2
    assert "pass --yes" in capsys.readouterr().err
    assert main(["gdpr", "forget", "0612345678", "-c", str(config), "--yes"]) == 2
    assert "no country code" in capsys.readouterr().err
    assert main(["gdpr", "forget", JAN, "-c", str(config), "--dry-run", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dry_run"] is True and out["counts"]["calls"] == 0 and out["dnc_entries_kept"] == 0
    assert main(["gdpr", "forget", "06 12345678", "--region", "nl", "-c", str(config), "--yes"]) == 0
    assert "GDPR erasure of 06 12345678" in capsys.readouterr().out


def test_cli_retention_run_reports_and_creates_the_salt(tmp_path, pg_dsn, capsys):
    config = _config(tmp_path, pg_dsn)
    assert main(["retention", "run", "-c", str(config), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing changed" in out and "call_events" in out
    assert (tmp_path / "state" / "retention.salt").stat().st_mode & 0o777 == 0o600
    assert main(["retention", "run", "-c", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    empty = tmp_path / "empty.yaml"
    empty.write_text(f"ari: {{password: x}}\ndatabase: {{url: '{pg_dsn}'}}\n")
    assert main(["retention", "run", "-c", str(empty)]) == 0
    assert "no limit is configured" in capsys.readouterr().out


async def test_the_commands_use_a_running_embedded_server_and_leave_it_running(pg_server, tmp_path):
    from types import SimpleNamespace

    from callcore.ops.cli import database, embedded_owner_problem
    from callcore.store.embedded import EmbeddedPostgres

    if not isinstance(pg_server, EmbeddedPostgres):
        pytest.skip("CALLCORE_TEST_DATABASE_URL: the session's server is not an embedded one")
    state = tmp_path / "state"
    state.mkdir()
    (state / "pgdata").symlink_to(pg_server.data_dir)
    config = SimpleNamespace(database=SimpleNamespace(url=None), state_dir=state)
    assert embedded_owner_problem(state / "pgdata") is None
    async with database(config) as pool:
        assert await pool.fetchval("SELECT 1") == 1
    assert pg_server.is_running()  # the service's server is never stopped by a maintenance command


def test_root_is_told_to_use_the_service_user_for_its_embedded_database(tmp_path):
    import os
    import pwd

    from callcore.ops.cli import embedded_owner_problem

    data = tmp_path / "pgdata"
    data.mkdir()
    if os.geteuid() != 0:
        assert embedded_owner_problem(data) is None
        return
    nobody = pwd.getpwnam("nobody")
    os.chown(data, nobody.pw_uid, nobody.pw_gid)
    problem = embedded_owner_problem(data)
    assert problem and "belongs to 'nobody'" in problem and "callcore-admin" in problem
