"""KPI reports: the rows the store selected → facts → the accumulators of :mod:`callcore.kpi.definitions`, per
group (queue, agent, campaign, IVR flow) and interval. Pure: the real-time ("today so far") and the historical
reports are this same code on rows selected for a different period.

Which interval a thing belongs to (docs/kpis.md): a queue segment to the interval it was **offered** in (its
``queued``), FCR to the interval of the call's first answered segment, CSAT to that of its last answered segment,
an IVR visit to that of its ``ivr_started``, an outbound attempt to that of its ``started_at``; agent state time
is cut at interval boundaries by the clock.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from callcore.kpi.definitions import (
    AgentStats,
    AgentTime,
    CampaignStats,
    IvrStats,
    KpiSettings,
    QueueStats,
)
from callcore.kpi.facts import (
    AgentRow,
    AttemptRow,
    CallFacts,
    CallStart,
    EventRow,
    Span,
    WrapRow,
    agent_spans,
    extract_calls,
    mark_repeats,
)
from callcore.kpi.periods import Bucket, BucketIndex, buckets, zone


@dataclass(frozen=True)
class KpiData:
    """What the store selected for ``[start, end)``; ``as_of``: when (events after it do not exist yet)."""

    start: datetime
    end: datetime
    as_of: datetime
    events: Sequence[EventRow] = ()
    wraps: Sequence[WrapRow] = ()
    agent_rows: Sequence[AgentRow] = ()  # per agent in order: the last row before start, then those until end
    call_starts: Sequence[CallStart] = ()  # inbound calls of the callers in ``events`` (FCR)
    attempts: Sequence[AttemptRow] = ()

    @property
    def time_end(self) -> datetime:
        """Where agent state time stops: the period's end, or now for a period still running."""
        return min(self.end, self.as_of)


@dataclass
class Folded:
    """The facts of a period, shared by every report of that period."""

    data: KpiData
    settings: KpiSettings
    buckets: list[Bucket]
    index: BucketIndex
    tz: tzinfo = timezone.utc  # how rows show their interval bounds
    calls: list[CallFacts] = field(default_factory=list)
    agent_time: dict[tuple[str, int], AgentTime] = field(default_factory=dict)


def fold(data: KpiData, settings: KpiSettings, interval: str | None = None, tz: str | None = None) -> Folded:
    z = zone(tz or settings.timezone)
    bks = buckets(data.start, data.end, interval, z)
    out = Folded(data, settings, bks, BucketIndex(bks), z)
    out.calls = extract_calls(data.events, data.wraps, as_of=data.as_of)
    mark_repeats(out.calls, data.call_starts, settings.fcr_days)
    out.agent_time = split_spans(agent_spans(data.agent_rows, data.start, data.time_end), bks)
    return out


def split_spans(spans: Iterable[Span], bks: Sequence[Bucket]) -> dict[tuple[str, int], AgentTime]:
    """Agent state time per (agent, interval), each span cut at the interval boundaries."""
    times: dict[tuple[str, int], AgentTime] = {}
    index = BucketIndex(list(bks))
    for span in spans:
        i = index.find(span.start)
        while i is not None and i < len(bks) and bks[i].start < span.end:
            lo, hi = max(span.start, bks[i].start), min(span.end, bks[i].end)
            if hi > lo:
                times.setdefault((span.agent_id, i), AgentTime()).add_span(span.state, (hi - lo).total_seconds())
            i += 1
    return times


# ---- folding into accumulators --------------------------------------------------------------------------------


def queue_stats(f: Folded) -> dict[tuple[str, int], QueueStats]:
    s = f.settings
    stats: dict[tuple[str, int], QueueStats] = {}

    def get(queue: str, i: int) -> QueueStats:
        key = (queue, i)
        if key not in stats:
            stats[key] = QueueStats(target_seconds=s.target_seconds(queue),
                                    short_abandon_seconds=s.short_abandon_seconds)
        return stats[key]

    for i in range(len(f.buckets)):
        for q in s.queues:
            get(q, i)
    for call in f.calls:
        for seg in call.segments:
            i = f.index.find(seg.offered_at)
            if i is not None:
                get(seg.queue, i).add_segment(seg)
        first = call.first_answered
        if first is not None and (i := f.index.find(first.offered_at)) is not None:
            get(first.queue, i).add_fcr(call)
        rated = call.rated_segment
        if rated is not None and call.csat is not None and (i := f.index.find(rated.offered_at)) is not None:
            get(rated.queue, i).add_csat(call.csat)
    for (queue, i), st in stats.items():
        members = s.queue_agents.get(queue, frozenset())
        for agent in members:
            t = f.agent_time.get((agent, i))
            if t is not None:
                st.add_agent_time(t)
    return stats


def agent_stats(f: Folded) -> dict[tuple[str, int], AgentStats]:
    stats: dict[tuple[str, int], AgentStats] = {}

    def get(agent: str, i: int) -> AgentStats:
        return stats.setdefault((agent, i), AgentStats())

    for i in range(len(f.buckets)):
        for a in f.settings.agents:
            get(a, i)
    for call in f.calls:
        for seg in call.segments:
            i = f.index.find(seg.offered_at)
            if i is None:
                continue
            for agent in seg.no_answers:
                get(agent, i).no_answers += 1
            if seg.answered and seg.agent:
                get(seg.agent, i).add_handle(seg)
        first = call.first_answered
        if first is not None and first.agent and (i := f.index.find(first.offered_at)) is not None:
            get(first.agent, i).add_fcr(call)
        rated = call.rated_segment
        if rated is not None and rated.agent and call.csat is not None \
                and (i := f.index.find(rated.offered_at)) is not None:
            get(rated.agent, i).add_csat(call.csat)
    for (agent, i), t in f.agent_time.items():
        st = get(agent, i)
        for name in ("ready_seconds", "reserved_seconds", "on_call_seconds", "wrap_up_state_seconds",
                     "paused_seconds"):
            setattr(st, name, getattr(st, name) + getattr(t, name))
    return stats


def ivr_stats(f: Folded) -> dict[tuple[str, int], IvrStats]:
    stats: dict[tuple[str, int], IvrStats] = {}
    for call in f.calls:
        if call.flow is None or call.ivr_at is None or call.direction not in (None, "inbound"):
            continue
        i = f.index.find(call.ivr_at)
        if i is not None:
            stats.setdefault((call.flow, i), IvrStats()).add_call(call)
    return stats


def campaign_stats(f: Folded) -> dict[tuple[str, int], CampaignStats]:
    s = f.settings
    stats: dict[tuple[str, int], CampaignStats] = {}
    seen_agents: dict[str, set[str]] = {}
    for i in range(len(f.buckets)):
        for c in s.campaigns:
            stats[(c, i)] = CampaignStats()
    for a in f.data.attempts:
        i = f.index.find(a.started_at)
        if i is None:
            continue
        stats.setdefault((a.campaign, i), CampaignStats()).add_attempt(
            a, s.campaign_success.get(a.campaign, frozenset()))
        if a.agent_id:
            seen_agents.setdefault(a.campaign, set()).add(a.agent_id)
    for (campaign, i), st in stats.items():
        agents = s.campaign_agents.get(campaign) or frozenset(seen_agents.get(campaign, ()))
        for agent in agents:
            t = f.agent_time.get((agent, i))
            if t is not None:
                st.agent_seconds += t.staffed_seconds
    return stats


# ---- rows (what the API and the CLI print) --------------------------------------------------------------------


class Row(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)



class QueueKpiRow(Row):
    queue: str
    start: datetime
    end: datetime
    offered: int = Field(description="segments offered to the queue in the interval (transfers and overflows in "
                                     "included)")
    transferred_in: int
    overflow_in: int
    answered: int
    answered_within_target: int
    abandoned: int = Field(description="every abandon, short ones included")
    short_abandoned: int = Field(description="abandoned within the short-abandon threshold: excluded from the "
                                             "service level and the abandon rate")
    abandoned_counted: int = Field(description="abandoned − short_abandoned")
    abandoned_after_target: int
    overflowed: int
    virtual_hold: int = Field(description="took the callback offer; not reached an agent (yet)")
    virtual_hold_failed: int
    ended: int
    waiting: int = Field(description="still waiting when the report was made")
    target_seconds: float
    service_level_pct: float | None = Field(None, description="answered within T / (answered + abandoned after T)")
    abandon_rate_pct: float | None = Field(None, description="abandoned_counted / (offered − short_abandoned)")
    asa_seconds: float | None = Field(None, description="mean wait of the answered")
    max_answer_wait_seconds: float
    avg_abandon_wait_seconds: float | None = None
    handled: int = Field(description="answered and completely handled (talk and wrap-up over)")
    aht_seconds: float | None = Field(None, description="(talk + hold + wrap-up) / handled")
    avg_talk_seconds: float | None = None
    avg_hold_seconds: float | None = None
    avg_wrap_up_seconds: float | None = None
    transferred_out: int
    transfer_rate_pct: float | None = Field(None, description="transferred_out / answered")
    fcr_eligible: int
    fcr_resolved: int
    fcr_pct: float | None = Field(None, description="no repeat call from the same number within N days")
    csat_responses: int
    csat_average: float | None = Field(None, description="mean of the 1-5 answers")
    csat_satisfied_pct: float | None = Field(None, description="answers of 4 or 5 / answers")
    occupancy_pct: float | None = Field(None, description="of the queue's member agents: (on_call + wrap_up) / "
                                                          "(logged in − paused)")


class AgentKpiRow(Row):
    agent: str
    start: datetime
    end: datetime
    answered: int
    handled: int
    aht_seconds: float | None = None
    avg_talk_seconds: float | None = None
    avg_hold_seconds: float | None = None
    avg_wrap_up_seconds: float | None = None
    transferred_out: int
    transfer_rate_pct: float | None = None
    no_answers: int = Field(description="offers the agent let ring out")
    logged_in_seconds: float
    paused_seconds: float
    staffed_seconds: float = Field(description="logged in − paused")
    ready_seconds: float
    reserved_seconds: float
    on_call_seconds: float
    wrap_up_state_seconds: float
    occupancy_pct: float | None = Field(None, description="(on_call + wrap_up) / (logged in − paused)")
    fcr_eligible: int
    fcr_resolved: int
    fcr_pct: float | None = None
    csat_responses: int
    csat_average: float | None = None
    csat_satisfied_pct: float | None = None


class CampaignKpiRow(Row):
    campaign: str
    start: datetime
    end: datetime
    attempts: int
    live_answers: int = Field(description="a person answered: human + abandoned outcome")
    human: int = Field(description="contacts: a person answered and talked to an agent")
    abandoned_outcome: int
    machine: int
    busy: int
    no_answer: int
    failed: int
    contact_rate_pct: float | None = Field(None, description="live answers / attempts")
    success: int
    conversion_pct: float | None = Field(None, description="success dispositions / contacts")
    abandoned: int = Field(description="abandoned under the campaign's policy")
    abandon_rate_pct: float | None = Field(None, description="abandoned / live answers")
    agent_seconds: float = Field(description="staffed time (logged in − paused) of the campaign's agents")
    connects_per_agent_hour: float | None = None
    avg_talk_seconds: float | None = None


class IvrKpiRow(Row):
    flow: str
    start: datetime
    end: datetime
    calls: int
    contained: int
    to_queue: int
    transferred: int
    abandoned: int
    errors: int
    in_progress: int
    containment_pct: float | None = Field(None, description="contained / (calls − in_progress)")


_PCT = {"service_level": "service_level_pct", "abandon_rate": "abandon_rate_pct", "transfer_rate": "transfer_rate_pct",
        "fcr_rate": "fcr_pct", "csat_satisfied_rate": "csat_satisfied_pct", "occupancy": "occupancy_pct",
        "contact_rate": "contact_rate_pct", "conversion_rate": "conversion_pct",
        "containment_rate": "containment_pct"}

R = TypeVar("R", bound=Row)


def _round(value: Any) -> Any:
    return round(value, 2) if isinstance(value, float) else value


def make_row(cls: type[R], values: dict[str, Any], **keys: Any) -> R:
    out: dict[str, Any] = dict(keys)
    for name, value in values.items():
        if name in _PCT:
            out[_PCT[name]] = None if value is None else round(100.0 * value, 2)
        else:
            out[name] = _round(value)
    wanted = cls.model_fields
    return cls(**{k: v for k, v in out.items() if k in wanted})


def _rows(cls: type[R], key: str, stats: dict[tuple[str, int], Any], f: Folded, only: str | None = None) -> list[R]:
    bks = f.buckets
    rows = [make_row(cls, st.as_dict(), **{key: name}, start=bks[i].start.astimezone(f.tz),
                     end=bks[i].end.astimezone(f.tz))
            for (name, i), st in stats.items() if only is None or name == only]
    rows.sort(key=lambda r: (getattr(r, key), r.start))  # type: ignore[attr-defined]
    return rows


def queue_rows(f: Folded, queue: str | None = None) -> list[QueueKpiRow]:
    return _rows(QueueKpiRow, "queue", queue_stats(f), f, queue)


def agent_rows(f: Folded, agent: str | None = None) -> list[AgentKpiRow]:
    return _rows(AgentKpiRow, "agent", agent_stats(f), f, agent)


def campaign_rows(f: Folded, campaign: str | None = None) -> list[CampaignKpiRow]:
    return _rows(CampaignKpiRow, "campaign", campaign_stats(f), f, campaign)


def ivr_rows(f: Folded, flow: str | None = None) -> list[IvrKpiRow]:
    return _rows(IvrKpiRow, "flow", ivr_stats(f), f, flow)


# ---- output formats --------------------------------------------------------------------------------------------


def to_csv(rows: Sequence[BaseModel], columns: Sequence[str] | None = None) -> str:
    """Rows as CSV with a header (the model's fields in order); datetimes ISO 8601, None empty."""
    buf = io.StringIO()
    if columns is None:
        columns = list(type(rows[0]).model_fields) if rows else []
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        data = row.model_dump(mode="json")
        writer.writerow(["" if data.get(c) is None else data.get(c) for c in columns])
    return buf.getvalue()


__all__ = [
    "AgentKpiRow",
    "CampaignKpiRow",
    "Folded",
    "IvrKpiRow",
    "KpiData",
    "QueueKpiRow",
    "Row",
    "agent_rows",
    "agent_stats",
    "campaign_rows",
    "campaign_stats",
    "fold",
    "ivr_rows",
    "ivr_stats",
    "make_row",
    "queue_rows",
    "queue_stats",
    "split_spans",
    "to_csv",
]
