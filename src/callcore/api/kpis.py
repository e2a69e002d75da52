"""KPIs: queues, agents, campaigns, IVR flows per interval, and the staffing an interval needed (docs/kpis.md).

Every report takes ``from`` and ``to`` (ISO 8601; a time without an offset is read in ``tz``), ``interval``
(``15m``, ``1h``, ``1d``; absent: one row for the whole period) and ``tz`` (the IANA zone intervals are aligned
to; default: the server's KPI zone). Neither ``from`` nor ``to``: today (the real-time view, "so far"). The same
computation serves both: a past period is simply evaluated later (see :mod:`callcore.kpi.store`).

Roles: supervisors and integrators (wallboards, WFM tools), and admins.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from callcore.api.auth import Role
from callcore.api.common import Out, method
from callcore.api.errors import ApiError, not_found
from callcore.api.routing import ApiRequest, RouteTable
from callcore.kpi.definitions import KpiSettings
from callcore.kpi.periods import zone
from callcore.kpi.report import AgentKpiRow, CampaignKpiRow, IvrKpiRow, QueueKpiRow
from callcore.kpi.staffing import StaffingRow

routes = RouteTable()

READ = (Role.supervisor, Role.integrator)
TAGS = ("kpis",)
MAX_PERIOD_DAYS = 400
Name = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Interval = Literal["15m", "1h", "1d"]


class KpiReports(Protocol):
    """What the endpoints need (``callcore.kpi.store.PgKpis``); ``ApiServices.kpis`` holds it."""

    settings: KpiSettings
    clock: Callable[[], datetime]

    def period(self, start: datetime | None, end: datetime | None, tz: str | None = None
               ) -> tuple[datetime, datetime]: ...

    async def queues(self, start: datetime, end: datetime, interval: str | None = None, tz: str | None = None,
                     queue: str | None = None) -> list[QueueKpiRow]: ...

    async def agents(self, start: datetime, end: datetime, interval: str | None = None, tz: str | None = None,
                     agent: str | None = None) -> list[AgentKpiRow]: ...

    async def campaigns(self, start: datetime, end: datetime, interval: str | None = None, tz: str | None = None,
                        campaign: str | None = None) -> list[CampaignKpiRow]: ...

    async def ivr(self, start: datetime, end: datetime, interval: str | None = None, tz: str | None = None,
                  flow: str | None = None) -> list[IvrKpiRow]: ...

    async def staffing(self, queue: str, start: datetime, end: datetime, interval: str | None = None,
                       tz: str | None = None, *, target_sl: float | None = None, target_seconds: float | None = None,
                       max_occupancy: float | None = None, max_abandon: float | None = None
                       ) -> list[StaffingRow]: ...


# -- queries -----------------------------------------------------------------------------------------------------


class PeriodQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_: datetime | None = Field(None, alias="from", description="start (ISO 8601, included); default: start of "
                                   "today, or of the day of `to`")
    to: datetime | None = Field(None, description="end (excluded); default: now (the end of today without `from`)")
    interval: Interval | None = Field(None, description="15m, 1h or 1d; absent: one row for the whole period")
    tz: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$",
                           description="IANA time zone of the intervals and of times without an offset "
                                       "(default: the server's KPI time zone)")

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, v: str | None) -> str | None:
        if v is not None:
            zone(v)  # ValueError: unknown
        return v

    @model_validator(mode="after")
    def _order(self) -> PeriodQuery:
        if self.from_ is not None and self.to is not None:
            a, b = _aware(self.from_, None), _aware(self.to, None)
            if b <= a:
                raise ValueError("`to` must be after `from`")
        return self


class AgentKpiQuery(PeriodQuery):
    agent: Name | None = Field(None, description="only this agent")


Percent = Annotated[float, Field(gt=0, lt=100)]


class StaffingQuery(PeriodQuery):
    queue: Name = Field(description="the queue whose measured traffic is staffed")
    target_sl: Percent | None = Field(None, description="percent answered within target_seconds (default: the "
                                                        "queue's service level)")
    target_seconds: float | None = Field(None, ge=0, le=3600, description="default: the queue's")
    max_occupancy: float | None = Field(None, gt=0, le=100, description="percent; also keep occupancy at or below")
    max_abandon: Percent | None = Field(None, description="percent; Erlang A also keeps abandons at or below")


# -- responses ---------------------------------------------------------------------------------------------------


class KpiReport(Out):
    start: datetime
    end: datetime
    as_of: datetime = Field(description="when it was computed: a period reaching past it is 'so far'")
    interval: Interval | None
    timezone: str
    short_abandon_seconds: float = Field(description="abandons quicker than this are short (reported apart)")
    fcr_days: float = Field(description="a repeat call within this many days means not resolved")


class QueueKpiReport(KpiReport):
    rows: list[QueueKpiRow]


class AgentKpiReport(KpiReport):
    rows: list[AgentKpiRow]


class CampaignKpiReport(KpiReport):
    rows: list[CampaignKpiRow]


class IvrKpiReport(KpiReport):
    rows: list[IvrKpiRow]


class StaffingReport(KpiReport):
    rows: list[StaffingRow]


# -- helpers -----------------------------------------------------------------------------------------------------


def _aware(value: datetime, tz: tzinfo | None) -> datetime:
    """A time without an offset is a wall-clock time of ``tz`` (UTC when not known yet)."""
    if value.tzinfo is not None:
        return value
    return value.replace(tzinfo=tz or timezone.utc).astimezone(timezone.utc)


def _reports(req: ApiRequest) -> KpiReports:
    """The reports service; 501 while the process has none wired (or only ``QueueKpis.service_level_today``)."""
    kpis = req.services.kpis
    if kpis is None:
        raise ApiError(501, "not_implemented", "KPI reports are not available in this process")
    method(kpis, "queues", "KPI reports")
    return kpis  # type: ignore[return-value]


def _bad(message: str, where: str = "query") -> ApiError:
    return ApiError(422, "validation_error", f"{where}: {message}", [{"loc": [where], "message": message,
                                                                      "type": "value_error"}])


def _period(req: ApiRequest, kpis: KpiReports) -> tuple[datetime, datetime, str]:
    q: PeriodQuery = req.query
    tz_name = q.tz or kpis.settings.timezone
    z = zone(tz_name)
    start = _aware(q.from_, z) if q.from_ is not None else None
    end = _aware(q.to, z) if q.to is not None else None
    start, end = kpis.period(start, end, tz_name)
    if end <= start:
        raise _bad("the period is empty (`to` is not after `from`)")
    if end - start > timedelta(days=MAX_PERIOD_DAYS):
        raise _bad(f"periods longer than {MAX_PERIOD_DAYS} days are refused")
    return start, end, tz_name


def _envelope(kpis: KpiReports, start: datetime, end: datetime, tz: str, interval: str | None) -> dict[str, Any]:
    z = zone(tz)
    s = kpis.settings
    return {"start": start.astimezone(z), "end": end.astimezone(z), "as_of": kpis.clock().astimezone(z),
            "interval": interval, "timezone": tz, "short_abandon_seconds": s.short_abandon_seconds,
            "fcr_days": s.fcr_days}


async def _run(coro: Any) -> Any:
    try:
        return await coro
    except ValueError as exc:  # too many intervals, a target the formulas cannot meet
        raise _bad(str(exc)) from None


def _check_known(known: tuple[str, ...], what: str, name: str) -> None:
    if known and name not in known:
        raise not_found(what, name)


# -- endpoints ---------------------------------------------------------------------------------------------------

_PERIOD_TEXT = ("Without `from` and `to`: today so far (the real-time view), computed exactly like a past "
                "period. A contact belongs to the interval it was offered in. Formulas: docs/kpis.md.")


@routes.get("/kpis/queues", summary="Queue KPIs per interval", tags=TAGS, roles=READ, query=PeriodQuery,
            response=QueueKpiReport, description="Offered, answered, abandoned (short ones apart), service level, "
            "ASA, AHT, transfers, FCR, CSAT, occupancy of each queue. " + _PERIOD_TEXT)
async def kpis_queues(req: ApiRequest) -> QueueKpiReport:
    kpis = _reports(req)
    start, end, tz = _period(req, kpis)
    rows = await _run(kpis.queues(start, end, req.query.interval, tz))
    return QueueKpiReport(**_envelope(kpis, start, end, tz, req.query.interval), rows=rows)


@routes.get("/kpis/queues/{name}", summary="One queue's KPIs per interval", tags=TAGS, roles=READ,
            query=PeriodQuery, response=QueueKpiReport, path_params={"name": Name}, errors=(404,),
            description=_PERIOD_TEXT)
async def kpis_queue(req: ApiRequest) -> QueueKpiReport:
    kpis = _reports(req)
    name = req.path["name"]
    _check_known(kpis.settings.queues, "queue", name)
    start, end, tz = _period(req, kpis)
    rows = await _run(kpis.queues(start, end, req.query.interval, tz, queue=name))
    return QueueKpiReport(**_envelope(kpis, start, end, tz, req.query.interval), rows=rows)


@routes.get("/kpis/agents", summary="Agent KPIs per interval", tags=TAGS, roles=READ, query=AgentKpiQuery,
            response=AgentKpiReport, description="Answered, AHT (talk, hold, wrap-up), transfers, no-answers, "
            "time per state, occupancy, FCR, CSAT of each agent. " + _PERIOD_TEXT)
async def kpis_agents(req: ApiRequest) -> AgentKpiReport:
    kpis = _reports(req)
    start, end, tz = _period(req, kpis)
    rows = await _run(kpis.agents(start, end, req.query.interval, tz, agent=req.query.agent))
    return AgentKpiReport(**_envelope(kpis, start, end, tz, req.query.interval), rows=rows)


@routes.get("/kpis/campaigns/{name}", summary="An outbound campaign's KPIs per interval", tags=TAGS, roles=READ,
            query=PeriodQuery, response=CampaignKpiReport, path_params={"name": Name}, errors=(404,),
            description="Attempts by outcome, contact rate, conversion, abandonment, connects per agent-hour. "
            + _PERIOD_TEXT)
async def kpis_campaign(req: ApiRequest) -> CampaignKpiReport:
    kpis = _reports(req)
    name = req.path["name"]
    _check_known(kpis.settings.campaigns, "campaign", name)
    start, end, tz = _period(req, kpis)
    rows = await _run(kpis.campaigns(start, end, req.query.interval, tz, campaign=name))
    return CampaignKpiReport(**_envelope(kpis, start, end, tz, req.query.interval), rows=rows)


@routes.get("/kpis/ivr", summary="IVR containment per flow and interval", tags=TAGS, roles=READ,
            query=PeriodQuery, response=IvrKpiReport, description="Inbound calls that entered each flow: "
            "contained, to a queue, transferred, abandoned in the flow. " + _PERIOD_TEXT)
async def kpis_ivr(req: ApiRequest) -> IvrKpiReport:
    kpis = _reports(req)
    start, end, tz = _period(req, kpis)
    rows = await _run(kpis.ivr(start, end, req.query.interval, tz))
    return IvrKpiReport(**_envelope(kpis, start, end, tz, req.query.interval), rows=rows)


@routes.get("/kpis/staffing", summary="Agents an interval needed for a service-level target (Erlang C and A)",
            tags=TAGS, roles=READ, query=StaffingQuery, response=StaffingReport, errors=(404,),
            description="From each interval's measured arrivals (offered − short abandons), AHT and, for Erlang A, "
            "the caller patience estimated from its abandons. " + _PERIOD_TEXT)
async def kpis_staffing(req: ApiRequest) -> StaffingReport:
    kpis = _reports(req)
    q: StaffingQuery = req.query
    _check_known(kpis.settings.queues, "queue", q.queue)
    start, end, tz = _period(req, kpis)
    rows = await _run(kpis.staffing(
        q.queue, start, end, q.interval, tz,
        target_sl=None if q.target_sl is None else q.target_sl / 100.0, target_seconds=q.target_seconds,
        max_occupancy=None if q.max_occupancy is None else q.max_occupancy / 100.0,
        max_abandon=None if q.max_abandon is None else q.max_abandon / 100.0))
    return StaffingReport(**_envelope(kpis, start, end, tz, q.interval), rows=rows)


__all__ = ["KpiReports", "routes"]
