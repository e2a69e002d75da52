"""KPIs over PostgreSQL: the queries only *select* the rows of a period; :mod:`callcore.kpi.report` computes.

:class:`PgKpis` serves the API (``GET /kpis/...``, and ``QueueKpis.service_level_today`` for ``GET /queues``)
and ``callcore kpis`` / ``callcore wfm``. Real-time and historical are the same call: "today" is the period
``[start of today, start of tomorrow)`` in the report's time zone, evaluated *as of now*; a past day is the same
period evaluated later. Nothing is pre-aggregated, so a correction of the definitions applies to history too.

What is selected for ``[start, end)`` (``as_of`` = now bounds everything):

1. the calls with a ``call_started``, ``queued``, ``overflow`` or ``ivr_started`` event in the period, and every
   event of theirs up to ``as_of`` (a call offered before ``end`` is followed to its end: talk, transfers);
2. the virtual-hold callback calls those events name, and survey calls that rate them (``survey_of``);
3. the ``wrap_up`` agent rows of those calls, each with the time of the agent's next row;
4. agent rows: each agent's last row before ``start`` and the rows until ``min(end, as_of)``;
5. inbound calls of the same caller numbers up to N days later (first-contact resolution);
6. ``lead_attempts`` started in the period (outbound).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from callcore.events import utcnow
from callcore.kpi.definitions import KpiSettings
from callcore.kpi.facts import (
    SELECTING_TYPES,
    SURVEY_OF_VARIABLE,
    VH_ATTEMPT,
    AgentRow,
    AttemptRow,
    CallStart,
    EventRow,
    WrapRow,
)
from callcore.kpi.periods import start_of_day, zone
from callcore.kpi.report import (
    AgentKpiRow,
    CampaignKpiRow,
    Folded,
    IvrKpiRow,
    KpiData,
    QueueKpiRow,
    agent_rows,
    campaign_rows,
    fold,
    ivr_rows,
    queue_rows,
    queue_stats,
)
from callcore.kpi.staffing import StaffingRow, staffing_rows

SELECT_CALLS_SQL = """
SELECT DISTINCT call_id FROM call_events
WHERE type = ANY($3::text[]) AND occurred_at >= $1 AND occurred_at < $2 AND occurred_at <= $4
"""

EVENTS_SQL = """
SELECT call_id, type, occurred_at, channel_id, payload FROM call_events
WHERE call_id = ANY($1::uuid[]) AND occurred_at <= $2
ORDER BY call_id, id
"""

SURVEYS_SQL = """
SELECT call_id FROM calls
WHERE variables ? $3 AND variables->>$3 = ANY($1::text[]) AND started_at >= $2
UNION
SELECT call_id FROM call_events
WHERE type = 'call_started' AND occurred_at >= $2 AND payload->>$3 = ANY($1::text[])
"""

WRAPS_SQL = """
SELECT w.agent_id, w.call_id, w.occurred_at AS start, n.occurred_at AS next_at
FROM agent_events w
LEFT JOIN LATERAL (
    SELECT x.occurred_at FROM agent_events x
    WHERE x.agent_id = w.agent_id AND x.id > w.id AND x.occurred_at <= $2
    ORDER BY x.id LIMIT 1
) n ON true
WHERE w.call_id = ANY($1::uuid[]) AND w.state = 'wrap_up' AND w.occurred_at <= $2
"""

AGENT_ROWS_SQL = """
SELECT agent_id, state, reason, occurred_at, call_id, queue, id FROM (
    SELECT DISTINCT ON (agent_id) agent_id, state, reason, occurred_at, call_id, queue, id
    FROM agent_events WHERE occurred_at < $1
    ORDER BY agent_id, id DESC
) AS before_start
UNION ALL
SELECT agent_id, state, reason, occurred_at, call_id, queue, id FROM agent_events
WHERE occurred_at >= $1 AND occurred_at < $2
ORDER BY agent_id, id
"""

CALL_STARTS_SQL = """
SELECT call_id, caller_number, started_at FROM calls
WHERE direction = 'inbound' AND caller_number = ANY($1::text[]) AND started_at > $2 AND started_at <= $3
"""

ATTEMPTS_SQL = """
SELECT campaign, started_at, outcome, abandoned, agent_id, disposition, talk_seconds, connect_delay_seconds
FROM lead_attempts
WHERE started_at >= $1 AND started_at < $2 AND started_at <= $3 AND ($4::text IS NULL OR campaign = $4)
ORDER BY started_at, id
"""


def _event(r: Any) -> EventRow:
    payload = r["payload"]
    return EventRow(r["call_id"], r["type"], r["occurred_at"], payload if isinstance(payload, dict) else {},
                    r["channel_id"])


class KpiStore:
    """The SELECTs of a period (no computing here beyond picking rows)."""

    def __init__(self, db: Any) -> None:
        self.db = db

    async def call_events(self, start: datetime, end: datetime, as_of: datetime) -> list[EventRow]:
        ids = [r["call_id"] for r in await self.db.fetch(SELECT_CALLS_SQL, start, end, list(SELECTING_TYPES), as_of)]
        events = await self._events_of(ids, as_of)
        loaded = set(ids)
        # Virtual-hold callbacks that reached the caller, and survey calls rating these calls.
        more = {uid for ev in events if ev.type == VH_ATTEMPT and ev.data.get("outcome") == "answered"
                for uid in [_as_uuid(ev.data.get("callback_call_id"))] if uid is not None and uid not in loaded}
        if ids:
            rows = await self.db.fetch(SURVEYS_SQL, [str(i) for i in ids], start, SURVEY_OF_VARIABLE)
            more |= {r["call_id"] for r in rows if r["call_id"] not in loaded}
        if more:
            events += await self._events_of(sorted(more), as_of)
        return events

    async def _events_of(self, ids: Sequence[uuid.UUID], as_of: datetime) -> list[EventRow]:
        if not ids:
            return []
        return [_event(r) for r in await self.db.fetch(EVENTS_SQL, list(ids), as_of)]

    async def wraps(self, call_ids: Sequence[uuid.UUID], as_of: datetime) -> list[WrapRow]:
        if not call_ids:
            return []
        rows = await self.db.fetch(WRAPS_SQL, list(call_ids), as_of)
        return [WrapRow(r["agent_id"], r["call_id"], r["start"], r["next_at"]) for r in rows]

    async def agent_rows(self, start: datetime, end: datetime) -> list[AgentRow]:
        rows = await self.db.fetch(AGENT_ROWS_SQL, start, end)
        return [AgentRow(r["agent_id"], r["state"], r["occurred_at"], r["reason"], r["call_id"], r["queue"])
                for r in rows]

    async def call_starts(self, numbers: Sequence[str], after: datetime, until: datetime) -> list[CallStart]:
        if not numbers:
            return []
        rows = await self.db.fetch(CALL_STARTS_SQL, list(numbers), after, until)
        return [CallStart(r["call_id"], r["caller_number"], r["started_at"]) for r in rows]

    async def attempts(self, start: datetime, end: datetime, as_of: datetime,
                       campaign: str | None = None) -> list[AttemptRow]:
        rows = await self.db.fetch(ATTEMPTS_SQL, start, end, as_of, campaign)
        return [AttemptRow(r["campaign"], r["started_at"], r["outcome"], r["abandoned"], r["agent_id"],
                           r["disposition"], r["talk_seconds"], r["connect_delay_seconds"]) for r in rows]

    async def load(self, start: datetime, end: datetime, as_of: datetime, *, fcr_days: float, calls: bool = True,
                   agents: bool = True, attempts: bool = False, campaign: str | None = None) -> KpiData:
        events: list[EventRow] = []
        wraps: list[WrapRow] = []
        starts: list[CallStart] = []
        if calls:
            events = await self.call_events(start, end, as_of)
            call_ids = sorted({e.call_id for e in events})
            wraps = await self.wraps(call_ids, as_of)
            numbers: dict[str, datetime] = {}
            for e in events:
                if e.type == "call_started" and e.data.get("direction") == "inbound" and e.data.get("caller_number"):
                    n = str(e.data["caller_number"])
                    numbers[n] = min(numbers.get(n, e.at), e.at)
            if numbers:
                first = min(numbers.values())
                last = min(max(numbers.values()) + timedelta(days=fcr_days), as_of)
                starts = await self.call_starts(sorted(numbers), first, last)
        agent_rows_ = await self.agent_rows(start, min(end, as_of)) if agents else []
        attempt_rows = await self.attempts(start, end, as_of, campaign) if attempts else []
        return KpiData(start, end, as_of, events, wraps, agent_rows_, starts, attempt_rows)


def _as_uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


class PgKpis:
    """KPI reports from PostgreSQL. Implements :class:`callcore.api.services.QueueKpis`.

    ``clock``: now (aware); ``settings``: the definitions' parameters and the config's queues and campaigns
    (:meth:`KpiSettings.from_config`)."""

    def __init__(self, db: Any, settings: KpiSettings | None = None, *, clock: Callable[[], datetime] = utcnow,
                 cache_seconds: float = 5.0) -> None:
        self.store = KpiStore(db)
        self.settings = settings or KpiSettings()
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._today: tuple[float, str, dict[str, float | None]] | None = None

    def today(self, tz: str | None = None) -> tuple[datetime, datetime]:
        """The real-time period: [start of today, start of tomorrow) in ``tz`` (evaluated as of now)."""
        z = zone(tz or self.settings.timezone)
        start = start_of_day(self.clock(), z)
        end = start_of_day(start + timedelta(hours=36), z)  # 36 h: past tomorrow's midnight even on a DST day
        return start, end

    def period(self, start: datetime | None, end: datetime | None, tz: str | None = None) -> tuple[datetime, datetime]:
        """The period asked for. Neither bound: today (the real-time view); no ``start``: from the start of the
        day of ``end``; no ``end``: until now."""
        if start is None and end is None:
            return self.today(tz)
        if end is None:
            end = self.clock()
        if start is None:
            start = start_of_day(end - timedelta(microseconds=1), zone(tz or self.settings.timezone))
        return start, end

    async def folded(self, start: datetime, end: datetime, interval: str | None = None, tz: str | None = None, *,
                     calls: bool = True, agents: bool = True, attempts: bool = False,
                     campaign: str | None = None) -> Folded:
        as_of = self.clock()
        data = await self.store.load(start, end, as_of, fcr_days=self.settings.fcr_days, calls=calls, agents=agents,
                                     attempts=attempts, campaign=campaign)
        return fold(data, self.settings, interval, tz)

    async def queues(self, start: datetime, end: datetime, interval: str | None = None, tz: str | None = None,
                     queue: str | None = None) -> list[QueueKpiRow]:
        return queue_rows(await self.folded(start, end, interval, tz), queue)

    async def agents(self, start: datetime, end: datetime, interval: str | None = None, tz: str | None = None,
                     agent: str | None = None) -> list[AgentKpiRow]:
        return agent_rows(await self.folded(start, end, interval, tz), agent)

    async def campaigns(self, start: datetime, end: datetime, interval: str | None = None, tz: str | None = None,
                        campaign: str | None = None) -> list[CampaignKpiRow]:
        f = await self.folded(start, end, interval, tz, calls=False, attempts=True, campaign=campaign)
        return campaign_rows(f, campaign)

    async def ivr(self, start: datetime, end: datetime, interval: str | None = None, tz: str | None = None,
                  flow: str | None = None) -> list[IvrKpiRow]:
        return ivr_rows(await self.folded(start, end, interval, tz, agents=False), flow)

    async def staffing(self, queue: str, start: datetime, end: datetime, interval: str | None = None,
                       tz: str | None = None, *, target_sl: float | None = None, target_seconds: float | None = None,
                       max_occupancy: float | None = None, max_abandon: float | None = None) -> list[StaffingRow]:
        f = await self.folded(start, end, interval, tz, agents=False)
        return staffing_rows(f, queue, target_sl=target_sl, target_seconds=target_seconds,
                             max_occupancy=max_occupancy, max_abandon=max_abandon)

    async def service_level_today(self, queue: str) -> float | None:
        """Percent of today's callers of ``queue`` answered within its target (the queue report's service level,
        "today so far"); None without answered or abandoned-after-target callers. Cached ``cache_seconds``: the
        queue list asks for every queue at once."""
        now = time.monotonic()
        tz = self.settings.timezone
        if self._today is None or now - self._today[0] > self.cache_seconds or self._today[1] != tz:
            start, end = self.today()
            stats = queue_stats(await self.folded(start, end, agents=False))
            levels = {q: (None if st.service_level is None else round(100.0 * st.service_level, 2))
                      for (q, _), st in stats.items()}
            self._today = (now, tz, levels)
        return self._today[2].get(queue)


__all__ = ["KpiStore", "PgKpis"]
