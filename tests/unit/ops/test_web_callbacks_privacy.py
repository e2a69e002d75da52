""""Call me now" requests (web_callbacks) under GDPR erasure and retention, against a real PostgreSQL: erasure
cancels a waiting request and strips every finished one of the number; retention deletes finished ones past the
personal-data limit and keeps open ones."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from callcore.api.outbound_services import PgCallbackQuota
from callcore.ops.config import RetentionSettings
from callcore.ops.gdpr import forget_number
from callcore.ops.retention import run_retention
from tests.unit.ops.fakes import FakeDeleter

JAN = "+31612345678"
OTHER = "+31699999999"
SALT = b"test-salt-0123456789abcdef"
NOW = datetime.now(timezone.utc)


async def add(pool: Any, number: str, status: str, *, finished_days_ago: float | None = None,
              context: dict[str, str] | None = None) -> uuid.UUID:
    rid = uuid.uuid4()
    finished = NOW - timedelta(days=finished_days_ago) if finished_days_ago is not None else None
    created = (finished or NOW) - timedelta(minutes=10)
    await pool.execute(
        "INSERT INTO web_callbacks (id, number, queue, context, requested_by, status, created_at, queued_at,"
        " estimated_at, attempts, updated_at, finished_at) VALUES ($1, $2, 'sales', $3::text::jsonb, 'website', $4,"
        " $5, $5, $5, 1, $5, $6)",
        rid, number, json.dumps(context or {"note": "Jan asks about fibre"}), status, created, finished)
    return rid


async def test_forget_cancels_a_waiting_request_and_strips_every_request_of_the_number(pg_pool):
    waiting = await add(pg_pool, JAN, "waiting")
    ringing = await add(pg_pool, JAN, "dialing")
    done = await add(pg_pool, JAN, "done", finished_days_ago=2)
    other = await add(pg_pool, OTHER, "waiting", context={"note": "Piet"})
    quota = PgCallbackQuota(pg_pool)
    await quota.record(JAN, str(waiting), NOW)
    await quota.record(OTHER, str(other), NOW)

    report = await forget_number(pg_pool, "06 12345678", region="NL", salt=SALT, deleter=FakeDeleter())
    assert report.ok
    rows = {r["id"]: r for r in await pg_pool.fetch("SELECT * FROM web_callbacks")}
    assert [rows[i]["status"] for i in (waiting, ringing, done)] == ["cancelled", "cancelled", "done"]
    for i in (waiting, ringing, done):
        assert rows[i]["number"].startswith("+999") and rows[i]["context"] == {}
        assert rows[i]["finished_at"] is not None and rows[i]["retry_at"] is None
    assert "612345678" not in json.dumps([{k: str(v) for k, v in dict(r).items()} for r in rows.values()])
    # Someone else's request is untouched; Jan's request count for the daily limit is gone, the other's kept.
    assert (rows[other]["number"], rows[other]["status"], rows[other]["context"]) == (OTHER, "waiting",
                                                                                       {"note": "Piet"})
    assert await quota.recent(JAN, NOW - timedelta(days=1)) == []
    assert len(await quota.recent(OTHER, NOW - timedelta(days=1))) == 1
    assert report.counts["web_callbacks"] == 3 and report.counts["web_callbacks_cancelled"] == 2
    assert report.counts["callback_quota"] == 1
    assert "web callback requests anonymised: 3" in report.format()


async def test_a_dry_run_erasure_leaves_the_requests_alone(pg_pool):
    waiting = await add(pg_pool, JAN, "waiting")
    report = await forget_number(pg_pool, JAN, salt=SALT, deleter=FakeDeleter(), dry_run=True)
    assert report.counts["web_callbacks"] == 1
    row = await pg_pool.fetchrow("SELECT number, status FROM web_callbacks WHERE id = $1", waiting)
    assert tuple(row) == (JAN, "waiting")


async def test_retention_deletes_finished_requests_past_the_personal_data_limit_only(pg_pool):
    old = [await add(pg_pool, JAN, status, finished_days_ago=40) for status in ("done", "failed", "cancelled",
                                                                               "expired")]
    recent = await add(pg_pool, JAN, "done", finished_days_ago=5)
    waiting = await add(pg_pool, OTHER, "waiting")
    settings = RetentionSettings(personal_data_days=30, batch_size=3)

    dry = await run_retention(pg_pool, settings, salt=SALT, deleter=None, dry_run=True)
    assert dry.counts["web_callbacks_deleted"] == 4  # exact, over several batches
    assert await pg_pool.fetchval("SELECT count(*) FROM web_callbacks") == 6

    report = await run_retention(pg_pool, settings, salt=SALT, deleter=None, dry_run=False)
    assert report.counts["web_callbacks_deleted"] == 4
    left = {r["id"] for r in await pg_pool.fetch("SELECT id FROM web_callbacks")}
    assert left == {recent, waiting} and not left & set(old)
    again = await run_retention(pg_pool, settings, salt=SALT, deleter=None, dry_run=False)
    assert "web_callbacks_deleted" not in again.counts
