"""IVR analytics ("voice of the customer") computed from the call events in PostgreSQL.

Definitions (per flow, over calls whose IVR started in [since, until)):

* **calls**: calls that entered the flow (``ivr_started``).
* **contained**: the flow itself ended the call (``ivr_ended`` outcome ``hangup``: information given, message
  recorded, callback taken) — resolved without an agent and without the caller abandoning mid-menu.
* **to_agent** (outcome ``queue``) and **transferred** (``transfer``) left the IVR for a person.
* **abandoned**: the caller hung up inside the flow (no ``ivr_ended``); ``abandoned_at`` counts them by the
  last node they entered.
* **containment rate** = contained / calls.
* **time in IVR**: from ``ivr_started`` to ``ivr_ended`` (or to the call's end for abandoned calls).
* **paths**: the sequence of nodes entered, most frequent first; **options**: valid menu choices by node.
* **lookups**: requests, failures (by error) and mean latency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

REPORT_SQL = """
WITH started AS (
    SELECT call_id, payload->>'flow' AS flow, occurred_at AS at
    FROM call_events
    WHERE type = 'ivr_started' AND occurred_at >= $1 AND occurred_at < $2
), ended AS (
    SELECT DISTINCT ON (e.call_id) e.call_id, e.payload->>'outcome' AS outcome, e.occurred_at AS at
    FROM call_events e JOIN started s USING (call_id)
    WHERE e.type = 'ivr_ended'
    ORDER BY e.call_id, e.id
), call_end AS (
    SELECT c.call_id, c.ended_at FROM calls c JOIN started s USING (call_id)
), last_node AS (
    SELECT DISTINCT ON (e.call_id) e.call_id, e.payload->>'node' AS node
    FROM call_events e JOIN started s USING (call_id)
    WHERE e.type = 'ivr_node_entered'
    ORDER BY e.call_id, e.id DESC
)
SELECT s.flow,
       count(*) AS calls,
       count(*) FILTER (WHERE d.outcome = 'hangup') AS contained,
       count(*) FILTER (WHERE d.outcome = 'queue') AS to_agent,
       count(*) FILTER (WHERE d.outcome = 'transfer') AS transferred,
       count(*) FILTER (WHERE d.outcome = 'error') AS errors,
       count(*) FILTER (WHERE d.call_id IS NULL) AS abandoned,
       avg(EXTRACT(EPOCH FROM (COALESCE(d.at, ce.ended_at) - s.at))) AS avg_seconds_in_ivr
FROM started s
LEFT JOIN ended d USING (call_id)
LEFT JOIN call_end ce USING (call_id)
GROUP BY s.flow
ORDER BY s.flow
"""

ABANDON_SQL = """
WITH started AS (
    SELECT call_id, payload->>'flow' AS flow FROM call_events
    WHERE type = 'ivr_started' AND occurred_at >= $1 AND occurred_at < $2
), abandoned AS (
    SELECT s.call_id, s.flow FROM started s
    WHERE NOT EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = s.call_id AND e.type = 'ivr_ended')
      AND EXISTS (SELECT 1 FROM calls c WHERE c.call_id = s.call_id AND c.ended_at IS NOT NULL)
)
SELECT a.flow, ln.node, count(*) AS calls
FROM abandoned a
CROSS JOIN LATERAL (
    SELECT payload->>'node' AS node FROM call_events e
    WHERE e.call_id = a.call_id AND e.type = 'ivr_node_entered' ORDER BY e.id DESC LIMIT 1
) ln
GROUP BY a.flow, ln.node
ORDER BY a.flow, calls DESC, ln.node
"""

PATHS_SQL = """
WITH started AS (
    SELECT call_id, payload->>'flow' AS flow FROM call_events
    WHERE type = 'ivr_started' AND occurred_at >= $1 AND occurred_at < $2
), paths AS (
    SELECT s.flow, string_agg(e.payload->>'node', ' > ' ORDER BY e.id) AS path
    FROM started s JOIN call_events e ON e.call_id = s.call_id AND e.type = 'ivr_node_entered'
    GROUP BY s.flow, s.call_id
)
SELECT flow, path, count(*) AS calls FROM paths
GROUP BY flow, path
ORDER BY flow, calls DESC, path
"""

OPTIONS_SQL = """
SELECT e.payload->>'flow' AS flow, e.payload->>'node' AS node, e.payload->>'digits' AS option, count(*) AS times
FROM call_events e
WHERE e.type = 'ivr_input' AND (e.payload->>'valid')::boolean AND e.payload->>'kind' = 'menu'
  AND e.occurred_at >= $1 AND e.occurred_at < $2
GROUP BY 1, 2, 3
ORDER BY 1, 2, times DESC, 3
"""

LOOKUPS_SQL = """
SELECT e.payload->>'flow' AS flow, e.payload->>'node' AS node,
       count(*) AS requests,
       count(*) FILTER (WHERE NOT (e.payload->>'ok')::boolean) AS failures,
       avg((e.payload->>'latency_ms')::float) AS avg_latency_ms,
       array_agg(DISTINCT e.payload->>'error') FILTER (WHERE e.payload->>'error' IS NOT NULL) AS seen_errors
FROM call_events e
WHERE e.type = 'ivr_lookup' AND e.occurred_at >= $1 AND e.occurred_at < $2
GROUP BY 1, 2
ORDER BY 1, 2
"""


@dataclass
class FlowReport:
    flow: str
    calls: int
    contained: int
    to_agent: int
    transferred: int
    errors: int
    abandoned: int
    avg_seconds_in_ivr: float | None
    abandoned_at: dict[str, int] = field(default_factory=dict)
    top_paths: list[tuple[str, int]] = field(default_factory=list)
    options: dict[str, dict[str, int]] = field(default_factory=dict)
    lookups: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def containment_rate(self) -> float:
        return self.contained / self.calls if self.calls else 0.0


async def ivr_report(
    db: asyncpg.Pool | asyncpg.Connection, since: datetime, until: datetime, *, top_paths: int = 5
) -> list[FlowReport]:
    reports = {
        r["flow"]: FlowReport(
            flow=r["flow"], calls=r["calls"], contained=r["contained"], to_agent=r["to_agent"],
            transferred=r["transferred"], errors=r["errors"], abandoned=r["abandoned"],
            avg_seconds_in_ivr=float(r["avg_seconds_in_ivr"]) if r["avg_seconds_in_ivr"] is not None else None,
        )
        for r in await db.fetch(REPORT_SQL, since, until)
    }
    for r in await db.fetch(ABANDON_SQL, since, until):
        if r["flow"] in reports:
            reports[r["flow"]].abandoned_at[r["node"] or "?"] = r["calls"]
    for r in await db.fetch(PATHS_SQL, since, until):
        rep = reports.get(r["flow"])
        if rep is not None and len(rep.top_paths) < top_paths:
            rep.top_paths.append((r["path"], r["calls"]))
    for r in await db.fetch(OPTIONS_SQL, since, until):
        if r["flow"] in reports:
            reports[r["flow"]].options.setdefault(r["node"], {})[r["option"]] = r["times"]
    for r in await db.fetch(LOOKUPS_SQL, since, until):
        if r["flow"] in reports:
            reports[r["flow"]].lookups[r["node"]] = {
                "requests": r["requests"], "failures": r["failures"],
                "avg_latency_ms": round(float(r["avg_latency_ms"] or 0), 1),
                "errors": sorted(r["seen_errors"] or []),
            }
    return list(reports.values())


def format_report(reports: list[FlowReport], since: datetime, until: datetime) -> str:
    lines = [f"IVR report {since.isoformat()} – {until.isoformat()}"]
    if not reports:
        lines.append("no IVR calls in this period")
    for r in reports:
        avg = f"{r.avg_seconds_in_ivr:.1f} s" if r.avg_seconds_in_ivr is not None else "-"
        lines += [
            "",
            f"flow {r.flow}: {r.calls} calls, containment {r.containment_rate:.0%} ({r.contained}), "
            f"to agent {r.to_agent}, transferred {r.transferred}, abandoned {r.abandoned}, errors {r.errors}, "
            f"avg time in IVR {avg}",
        ]
        if r.abandoned_at:
            lines.append("  abandoned at: " + ", ".join(f"{n} {c}" for n, c in r.abandoned_at.items()))
        if r.options:
            for node, opts in r.options.items():
                lines.append(f"  menu {node}: " + ", ".join(f"{d}: {c}" for d, c in opts.items()))
        for path, count in r.top_paths:
            lines.append(f"  path ({count}): {path}")
        for node, lk in r.lookups.items():
            errs = f" ({', '.join(lk['errors'])})" if lk["errors"] else ""
            lines.append(
                f"  lookup {node}: {lk['requests']} requests, {lk['failures']} failed{errs}, "
                f"avg {lk['avg_latency_ms']} ms"
            )
    return "\n".join(lines)
