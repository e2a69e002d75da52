"""Outbound campaigns: state and control, leads (CSV upload, listing), do-not-call lists, dispositions of campaign
calls and preview dialling.

| endpoint | roles |
|---|---|
| ``GET /campaigns``, ``GET /campaigns/{name}``, ``GET /campaigns/{name}/leads`` | supervisor, integrator |
| ``POST /campaigns/{name}/start|pause|stop``, ``POST /campaigns/{name}/leads`` (CSV) | supervisor, integrator |
| ``POST /campaigns``, ``PUT /campaigns/{name}`` | supervisor (campaigns owned by the API; the config file's: 409) |
| ``GET|POST /dnc``, ``GET|POST /campaigns/{name}/dnc`` | supervisor, integrator |
| ``DELETE /dnc/{number}``, ``DELETE /campaigns/{name}/dnc/{number}`` | supervisor |
| ``POST /agents/{agent_id}/campaign-disposition`` | agent (own), supervisor, integrator |
| ``GET /agents/{agent_id}/preview``, ``POST /agents/{agent_id}/preview/{lead_id}/dial|skip`` | agent (own), supervisor, integrator |

(admin may do everything.) The services are the Protocols of :mod:`callcore.api.outbound_services`, found in
``app[OUTBOUND]``; without them these endpoints answer 501.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

import phonenumbers
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from callcore.api.agents import AgentId
from callcore.api.auth import Role
from callcore.api.common import Body, Out, service_errors
from callcore.api.errors import ApiError, bad_request, not_found
from callcore.api.outbound_services import (
    CampaignControl,
    CampaignDefinitions,
    CampaignRunView,
    DispositionSink,
    DncStore,
    Invalid,
    LeadStore,
    OutboundServices,
    PreviewControl,
    outbound_of,
)
from callcore.api.pagination import PageQuery, decode_cursor, encode_cursor, paginate
from callcore.api.routing import ApiRequest, Reply, RouteTable
from callcore.campaigns.model import CampaignConfig
from callcore.dialer.service import DialerError
from callcore.events import CallEvent
from callcore.leads.csv_import import ImportReport, LeadFileError
from callcore.leads.dnc import DncEntry
from callcore.leads.phone import InvalidNumber, to_e164
from callcore.leads.store import LEAD_STATUSES, Lead

routes = RouteTable()

READ = (Role.supervisor, Role.integrator)
CONTROL = (Role.supervisor, Role.integrator)
SELF = (Role.agent, Role.integrator)  # agent tokens for their own agent; supervisors (and admins) for anyone
SUPERVISORS = (Role.supervisor,)
TAGS = ("campaigns",)
DNC_TAGS = ("dnc",)
PREVIEW_TAGS = ("campaigns",)

CampaignName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
NAME = {"name": CampaignName}
LeadId = Annotated[int, Field(ge=1, le=2**63 - 1)]
PhoneText = Annotated[str, StringConstraints(min_length=2, max_length=40, pattern=r"^\+?[0-9(][0-9 ()./-]*$")]
PathNumber = Annotated[str, StringConstraints(min_length=2, max_length=20, pattern=r"^\+?[0-9]+$")]
PlainText = r"^[^\x00-\x1f\x7f]*$"
LeadStatus = Literal["pending", "dialing", "connected", "callback", "done", "exhausted", "dnc", "cancelled"]
assert set(LeadStatus.__args__) == set(LEAD_STATUSES)  # type: ignore[attr-defined]


def _region(v: object) -> object:
    if isinstance(v, str):
        v = v.strip().upper()
        if v not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{v!r} is not a region phone numbers know (ISO 3166 codes such as NL, BE, US, GB)")
    return v


Region = Annotated[str, BeforeValidator(_region), StringConstraints(min_length=2, max_length=3)]

NOT_WIRED = "the outbound services (campaigns, leads, do-not-call, preview, callbacks) are not available in this " \
            "process"


# -- services ---------------------------------------------------------------------------------------------------------


def outbound(req: ApiRequest) -> OutboundServices:
    out = outbound_of(req.request)
    if out is None:
        raise ApiError(501, "not_implemented", NOT_WIRED)
    return out


def part(service: Any, what: str) -> Any:
    if service is None:
        raise ApiError(501, "not_implemented", f"{what} is not available in this process yet")
    return service


def _control(out: OutboundServices) -> CampaignControl:
    control: CampaignControl = part(out.campaigns, "campaign control (the dialer)")
    return control


def _leads(out: OutboundServices) -> LeadStore:
    store: LeadStore = part(out.leads, "the lead store")
    return store


def _dnc(out: OutboundServices) -> DncStore:
    store: DncStore = part(out.dnc, "the do-not-call store")
    return store


def run_of(control: CampaignControl, name: str) -> CampaignRunView:
    try:
        return control.run_of(name)
    except KeyError:
        raise not_found("campaign", name) from None


@contextmanager
def outbound_errors() -> Iterator[None]:
    """Service refusals (404/409 as everywhere, 422 for Invalid, 409 for the dialer's refusals)."""
    try:
        with service_errors():
            yield
    except Invalid as exc:
        raise ApiError(422, "invalid", exc.message, exc.details) from None
    except DialerError as exc:
        raise ApiError(409, "rejected", str(exc)) from None


def _agent_known(req: ApiRequest, agent_id: str) -> None:
    acd = req.services.acd
    if acd is not None and agent_id not in acd.agents:
        raise not_found("agent", agent_id)


# -- models ------------------------------------------------------------------------------------------------------


class CampaignOut(Out):
    name: str
    description: str
    enabled: bool
    mode: Literal["preview", "progressive", "predictive"]
    queue: str | None
    state: str = Field(description="stopped, running or paused")
    in_flight: int = Field(description="calls ringing or waiting for an agent")
    connected: int = Field(description="calls talking to an agent")
    dialed: int = Field(description="calls launched since this process started")
    last_decision: str = Field(description="the pacer's last decision, in words")
    source: Literal["config", "api"] = Field(description="who owns it: the config file (change it there and "
                                                         "reload) or the API (PUT /campaigns/{name})")
    version: int | None = Field(description="API campaigns: the stored version (PUT ?version= / If-Match); "
                                            "null for the config file's")


class CampaignWritten(CampaignOut):
    warnings: list[str] = Field(description="what the config file's checks would warn about (it was stored)")


class CampaignCreateBody(CampaignConfig):
    """A campaign as in the config file's ``campaigns:`` section, with its name."""

    name: CampaignName


class CampaignPutQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(None, ge=1, le=2**31 - 1, description="refuse (409) unless the campaign is still "
                                                                      "at this version (as If-Match does)")


class CampaignPage(Out):
    items: list[CampaignOut]
    next: str | None


class DispositionInfo(Out):
    label: str
    is_success: bool
    schedules_callback: bool
    callback_owner: Literal["agent", "any"]
    adds_to_dnc: bool
    dnc_scope: Literal["global", "campaign"]
    retry_as: str | None


class AbandonmentOut(Out):
    """The abandonment ledger's rolling window ending now (what the pacer keeps under the limit)."""

    preset: str
    window_seconds: float
    start: datetime
    end: datetime
    attempts: int
    live_answers: int
    abandoned: int
    machine: int
    false_positives: float
    rate: float = Field(description="(abandoned + false positives) / (live answers + false positives)")
    limit: float
    passed: bool


class CampaignDetail(CampaignOut):
    leads: dict[str, int] = Field(description="leads by status (every status, 0 included)")
    leads_total: int
    abandonment: AbandonmentOut
    dispositions: dict[str, DispositionInfo]
    script: str


class LeadOut(Out):
    id: int
    campaign: str
    number: str
    name: str | None
    status: str
    priority: int
    attempts: int
    last_outcome: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime
    disposition: str | None
    timezone: str
    fields: dict[str, Any]
    source_line: int | None


class LeadPage(Out):
    items: list[LeadOut]
    next: str | None


class LeadQuery(PageQuery):
    status: LeadStatus | None = Field(None, description="only leads in this status")


class UploadQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone_column: str | None = Field(None, min_length=1, max_length=100, pattern=PlainText,
                                     description="the phone column's header (default: phone, number, ...)")
    encoding: str = Field("utf-8-sig", min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$",
                          description="the file's encoding, e.g. cp1252 for old Excel exports")
    delimiter: Literal[",", ";", "tab", "|"] | None = Field(None, description="default: taken from the header")
    source: str | None = Field(None, min_length=1, max_length=200, pattern=PlainText,
                               description="the name the import is recorded under (default: the file name)")
    problems: int = Field(1000, ge=0, le=10_000, description="problem rows listed at most (all are counted)")


class ProblemOut(Out):
    line: int
    kind: Literal["invalid", "duplicate_in_file", "already_in_campaign", "on_dnc"]
    value: str
    reason: str


class ImportReportOut(Out):
    campaign: str
    source: str
    import_id: uuid.UUID
    sha256: str = Field(description="of the uploaded bytes")
    bytes: int
    phone_column: str
    delimiter: str
    rows: int
    imported: int
    invalid: int
    duplicates_in_file: int
    already_in_campaign: int
    on_dnc: int = Field(description="imported, but never dialled while listed")
    blank_lines: int
    tz_from_number: int
    tz_from_column: int
    tz_from_campaign: int
    tz_ambiguous: int
    seconds: float
    problems: list[ProblemOut] = Field(description="with their line numbers, in line order")
    problems_truncated: bool = Field(description="more problems than `problems` asked for: the counts have all")


class DncEntryOut(Out):
    id: int
    campaign: str | None = Field(description="null: the global list")
    number: str
    reason: str
    source: str
    added_at: datetime
    expires_at: datetime | None


class DncPage(Out):
    items: list[DncEntryOut]
    next: str | None


def _query_plus(v: object) -> object:
    """A ``+`` written unencoded in a query string arrives as a space: ``?number=+31...`` means ``+31...``."""
    if isinstance(v, str) and v.startswith(" ") and v.strip()[:1].isdigit():
        return "+" + v.strip()
    return v


class DncQuery(PageQuery):
    number: Annotated[PhoneText | None, BeforeValidator(_query_plus)] = Field(
        None, description="only this number's entry (write + as %2B)")
    region: Region | None = Field(None, description="how a number without a country code is read")


class DncAddBody(Body):
    number: PhoneText
    reason: str = Field("", max_length=500, pattern=PlainText)
    expires_at: AwareDatetime | None = Field(None, description="the entry stops counting then; null: never")
    region: Region | None = Field(None, description="how a number without a country code is read (default: the "
                                                    "campaign's region, or callcore's)")


class DncAddOut(Out):
    entry: DncEntryOut
    created: bool = Field(description="false: it was listed already (201 when created, 200 otherwise)")


class DncRemoveQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    region: Region | None = None
    reason: str = Field("", max_length=500, pattern=PlainText, description="kept with the removed entry")


class CampaignDispositionBody(Body):
    call_id: uuid.UUID = Field(description="the campaign call (its id is the dial attempt's)")
    disposition: str = Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$",
                             description="one of the campaign's dispositions (GET /campaigns/{name})")
    notes: str | None = Field(None, max_length=4000)
    callback_at: datetime | None = Field(None, description="dispositions that schedule a callback: when; without "
                                                           "an offset it is a time on the callee's clock")
    callback_owner: Literal["agent", "any"] | None = Field(None, description="who calls back (default: the "
                                                                              "disposition's)")


class CampaignDispositionOut(Out):
    event_id: uuid.UUID
    call_id: uuid.UUID
    agent_id: str
    campaign: str
    lead_id: int | None
    disposition: str
    lead_status: str | None = Field(description="done, dnc, callback, pending (retry), exhausted")
    next_attempt_at: datetime | None
    callback_id: int | None
    at: datetime


class PreviewCallbackOut(Out):
    id: int = Field(description="the scheduled callback's id")
    owner_agent: str | None = Field(description="the agent it was scheduled for; null: any agent of the campaign")
    due_at: datetime = Field(description="when it was promised (UTC)")
    due_local: str = Field(description="the promised time as agreed on the callee's clock, e.g. 2026-03-11 10:00")
    timezone: str = Field(description="the callee's time zone (IANA)")
    note: str = Field(description="the note left when it was scheduled (may be empty)")


class PreviewOut(Out):
    agent_id: str
    campaign: str | None = Field(description="null: no lead to preview now")
    lead: LeadOut | None
    reserved_until: datetime | None = Field(description="dial or skip before this; then the lead goes back")
    callback: PreviewCallbackOut | None = Field(
        None, description="set when the offer is a scheduled callback (the callee expects the call); null: a lead")
    script: str
    dispositions: dict[str, DispositionInfo]


class SkipBody(Body):
    reason: str = Field("skipped", min_length=1, max_length=200, pattern=PlainText)


class PreviewActionOut(Out):
    agent_id: str
    lead_id: int
    action: Literal["dial", "skip"]
    call_id: uuid.UUID | None = Field(description="dial: the call's id (also the attempt's)")


# -- conversions ---------------------------------------------------------------------------------------------------


def campaign_out(control: CampaignControl, run: CampaignRunView,
                 definitions: CampaignDefinitions | None = None) -> CampaignOut:
    cfg = run.config
    status = dict(control.status(run.name))
    return CampaignOut(
        name=run.name, description=cfg.description, enabled=cfg.enabled, mode=cfg.mode, queue=cfg.queue,
        state=str(status.get("state", run.state)), in_flight=int(status.get("in_flight", 0)),
        connected=int(status.get("connected", 0)), dialed=int(status.get("dialed", 0)),
        last_decision=str(status.get("last_decision", "")),
        source=definitions.source(run.name) if definitions is not None else "config",
        version=definitions.version(run.name) if definitions is not None else None,
    )


def dispositions_of(cfg: CampaignConfig) -> dict[str, DispositionInfo]:
    return {code: DispositionInfo(label=d.label or code, is_success=d.is_success,
                                  schedules_callback=d.schedules_callback, callback_owner=d.callback_owner,
                                  adds_to_dnc=d.adds_to_dnc, dnc_scope=d.dnc_scope, retry_as=d.retry_as)
            for code, d in cfg.dispositions.items()}


def lead_out(lead: Lead) -> LeadOut:
    return LeadOut(id=lead.id, campaign=lead.campaign, number=lead.number, name=lead.name, status=lead.status,
                   priority=lead.priority, attempts=lead.attempts, last_outcome=lead.last_outcome,
                   last_attempt_at=lead.last_attempt_at, next_attempt_at=lead.next_attempt_at,
                   disposition=lead.disposition, timezone=lead.timezone, fields=dict(lead.fields),
                   source_line=lead.source_line)


def dnc_out(e: DncEntry) -> DncEntryOut:
    return DncEntryOut(id=e.id, campaign=e.campaign, number=e.number, reason=e.reason, source=e.source,
                       added_at=e.added_at, expires_at=e.expires_at)


def report_out(report: ImportReport, *, digest: str, size: int, limit: int) -> ImportReportOut:
    counts = report.counts()
    problems = report.problems[:limit]
    return ImportReportOut(
        campaign=report.campaign, source=report.source, import_id=report.import_id, sha256=digest, bytes=size,
        phone_column=report.phone_column, delimiter=report.delimiter, **counts, seconds=round(report.seconds, 3),
        problems=[ProblemOut(line=p.line, kind=p.kind, value=p.value, reason=p.reason) for p in problems],
        problems_truncated=len(report.problems) > len(problems),
    )


def _after_id(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    text = decode_cursor(cursor)
    if not text.isdigit():
        raise bad_request("invalid_cursor", "cursor is not one this server gave out (use the `next` link as is)")
    return int(text)


# -- campaigns -------------------------------------------------------------------------------------------------------


@routes.get("/campaigns", summary="List campaigns with their live state", tags=TAGS, roles=READ, query=PageQuery,
            response=CampaignPage, errors=(501,))
async def list_campaigns(req: ApiRequest) -> CampaignPage:
    out = outbound(req)
    control = _control(out)
    runs = list(control.runs.values())
    page, next_link = paginate(runs, lambda r: r.name, req.query, req)
    return CampaignPage(items=[campaign_out(control, r, out.definitions) for r in page], next=next_link)


@routes.get("/campaigns/{name}", summary="One campaign: state, leads by status, abandonment now, dispositions",
            tags=TAGS, roles=READ, response=CampaignDetail, path_params=NAME, errors=(404, 501))
async def get_campaign(req: ApiRequest) -> CampaignDetail:
    out = outbound(req)
    control = _control(out)
    run = run_of(control, req.path["name"])
    store = _leads(out)
    counts = dict(await store.counts(run.name))
    window = await store.current_window(run.name, run.config, now=out.clock())
    policy = run.config.policy()
    leads = {s: int(counts.get(s, 0)) for s in LEAD_STATUSES}
    return CampaignDetail(
        **campaign_out(control, run, out.definitions).model_dump(),
        leads=leads, leads_total=sum(leads.values()),
        abandonment=AbandonmentOut(
            preset=policy.preset, window_seconds=policy.window_seconds, start=window.start, end=window.end,
            attempts=window.attempts, live_answers=window.live_answers, abandoned=window.abandoned,
            machine=window.machine, false_positives=round(window.false_positives, 3), rate=round(window.rate, 6),
            limit=window.limit, passed=window.passed),
        dispositions=dispositions_of(run.config),
        script=run.config.script,
    )


def _definitions(out: OutboundServices) -> CampaignDefinitions:
    defs: CampaignDefinitions = part(out.definitions, "the campaign store")
    return defs


def _if_match(req: ApiRequest) -> int | None:
    """The expected version: ``?version=`` or an ``If-Match: "3"`` header (``*``: any)."""
    version: int | None = req.query.version
    header = req.request.headers.get("If-Match")
    if header is not None and header.strip() != "*":
        text = header.strip().removeprefix("W/").strip('"')
        if not text.isdigit() or not 0 < int(text) < 2**31:
            raise bad_request("invalid_if_match", 'If-Match must be a campaign version such as "3"')
        if version is not None and version != int(text):
            raise bad_request("invalid_if_match", "If-Match and ?version= name different versions")
        version = int(text)
    return version


def _written(out: OutboundServices, name: str, warnings: list[str]) -> CampaignWritten:
    control = _control(out)
    return CampaignWritten(**campaign_out(control, run_of(control, name), out.definitions).model_dump(),
                           warnings=warnings)


OWNERSHIP = ("A campaign belongs to the config file (`campaigns:` in callcore.yaml) or to the API, never both: "
             "the file's are changed in the file and applied with `callcore reload`, this endpoint answers 409 for "
             "them. The body is a campaign as written in the file, checked exactly as the file's (422 lists every "
             "problem; nothing is stored).")


@routes.post("/campaigns", summary="Create a campaign (stored in PostgreSQL, stopped)", tags=TAGS,
             roles=SUPERVISORS, body=CampaignCreateBody, response=CampaignWritten, status=201,
             errors=(409, 422, 501),
             description=OWNERSHIP + " 409: the name is the config file's or taken. The dialer knows it at once; "
                                     "start it with POST /campaigns/{name}/start.")
async def create_campaign(req: ApiRequest) -> CampaignWritten:
    out = outbound(req)
    defs = _definitions(out)
    body: CampaignCreateBody = req.body
    config = CampaignConfig.model_validate(body.model_dump(exclude_unset=True, exclude={"name"}))
    with outbound_errors():
        _, warnings = await defs.create(body.name, config, by=req.principal.name if req.principal else "")
        return _written(out, body.name, warnings)


@routes.put("/campaigns/{name}", summary="Replace an API campaign's definition", tags=TAGS, roles=SUPERVISORS,
            body=CampaignConfig, query=CampaignPutQuery, response=CampaignWritten, path_params=NAME,
            errors=(404, 409, 422, 501),
            description=OWNERSHIP + " While the campaign runs, everything but `mode` and `queue` may change (caller "
                                    "ID, windows, retry rules, dispositions, abandonment policy, AMD, script…): "
                                    "the next attempts use it, calls in progress keep theirs; changing `mode` or "
                                    "`queue` of a running campaign is 409 (pause or stop it first). `?version=` or "
                                    "`If-Match` refuse a lost update with 409 and the current version.")
async def update_campaign(req: ApiRequest) -> CampaignWritten:
    out = outbound(req)
    defs = _definitions(out)
    name = req.path["name"]
    expected = _if_match(req)
    with outbound_errors():
        _, warnings = await defs.update(name, req.body, by=req.principal.name if req.principal else "",
                                        expected_version=expected)
        return _written(out, name, warnings)


def _control_route(action: Literal["start", "pause", "stop"], summary: str, description: str) -> None:
    async def handler(req: ApiRequest) -> CampaignOut:
        out = outbound(req)
        control = _control(out)
        run = run_of(control, req.path["name"])
        with outbound_errors():
            await getattr(control, action)(run.name)
        return campaign_out(control, run_of(control, run.name), out.definitions)

    handler.__name__ = f"{action}_campaign"
    routes.post(f"/campaigns/{{name}}/{action}", summary=summary, description=description, tags=TAGS,
                roles=CONTROL, response=CampaignOut, path_params=NAME, errors=(404, 409, 501))(handler)


_control_route("start", "Start dialling a campaign",
               "stopped / paused → running. 409 when it may not run: disabled in the config, preview mode (its "
               "agents dial), no queue. Running already: nothing changes.")
_control_route("pause", "Pause a campaign", "Stops launching calls; calls in progress go on.")
_control_route("stop", "Stop a campaign", "Stops launching calls; calls in progress go on.")


# -- leads -------------------------------------------------------------------------------------------------------------

CSV_TYPES = {"text/csv", "text/plain", "application/csv", "text/tab-separated-values", "text/x-csv",
             "application/vnd.ms-excel", "application/octet-stream"}
CHUNK = 1 << 16


async def _read_limited(chunks: Any, limit: int) -> tuple[io.BytesIO, str, int]:
    """Copy an upload into memory, at most ``limit`` bytes (413 beyond): (buffer, sha256, size)."""
    buf = io.BytesIO()
    digest = hashlib.sha256()
    size = 0
    while True:
        chunk = await chunks()
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "payload_too_large",
                           f"the upload is larger than {limit} bytes: split the file, or import it on the server "
                           "with `callcore leads import`", {"limit": limit})
        digest.update(chunk)
        buf.write(chunk)
    buf.seek(0)
    return buf, digest.hexdigest(), size


async def _upload(request: web.Request, limit: int) -> tuple[io.BytesIO, str, int, str | None]:
    """The CSV of a ``text/csv`` body or of a multipart form's file part: (buffer, sha256, size, file name)."""
    ctype = request.content_type
    if ctype == "multipart/form-data":
        try:
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    raise ApiError(422, "invalid_file", "the form has no file part (send the CSV as the field "
                                                        "`file`)")
                if isinstance(part, BodyPartReader) and (part.name == "file" or part.filename):
                    filename = part.filename
                    buf, digest, size = await _read_limited(lambda p=part: p.read_chunk(CHUNK), limit)
                    return buf, digest, size, filename
                await part.release()  # another field of the form
        except (ValueError, AssertionError, RuntimeError, HttpProcessingError) as exc:
            raise bad_request("invalid_multipart", f"the multipart body cannot be read: {exc}") from None
    if ctype not in CSV_TYPES:
        raise ApiError(415, "unsupported_media_type",
                       f"send the CSV as text/csv (or as the `file` of a multipart/form-data form), not {ctype}",
                       {"accepted": sorted(CSV_TYPES | {"multipart/form-data"})})
    buf, digest, size = await _read_limited(lambda: request.content.read(CHUNK), limit)
    return buf, digest, size, None


@routes.post("/campaigns/{name}/leads", summary="Upload leads (CSV) into a campaign", tags=TAGS, roles=CONTROL,
             query=UploadQuery, response=ImportReportOut, status=201, path_params=NAME,
             errors=(404, 409, 413, 415, 422, 501),
             description="The body is the CSV itself (`Content-Type: text/csv`) or a `multipart/form-data` form "
                         "whose `file` field is the CSV; at most the server's upload limit (10 MiB by default: "
                         "larger files go through `callcore leads import`). The format is the one of "
                         "docs/campaigns.md (a header row naming a phone column; delimiter and UTF-8 or "
                         "`encoding`). One transaction: 201 with the report (every row not imported, with its line "
                         "number), or 422 `invalid_file` and nothing imported. An `Idempotency-Key` replays the "
                         "first report: use a new key for each file (the report's `sha256` identifies the file).")
async def upload_leads(req: ApiRequest) -> Reply:
    out = outbound(req)
    control = _control(out)
    run = run_of(control, req.path["name"])
    store = _leads(out)
    q: UploadQuery = req.query
    buf, digest, size, filename = await _upload(req.request, out.max_upload_bytes)
    if size == 0:
        raise ApiError(422, "invalid_file", "the upload is empty (a CSV with a header row is needed)")
    source = q.source or filename or "api-upload"
    delimiter = "\t" if q.delimiter == "tab" else q.delimiter
    try:
        report = await store.import_csv(run.name, run.config, buf, source_name=source, phone_column=q.phone_column,
                                        encoding=q.encoding, delimiter=delimiter)
    except LeadFileError as exc:
        message = str(exc) if "nothing was imported" in str(exc) else f"{exc}; nothing was imported"
        raise ApiError(422, "invalid_file", message, {"sha256": digest, "bytes": size}) from None
    except ValueError as exc:  # the campaign's config cannot place numbers in time zones
        raise ApiError(409, "rejected", str(exc)) from None
    return Reply(report_out(report, digest=digest, size=size, limit=q.problems), status=201)


@routes.get("/campaigns/{name}/leads", summary="A campaign's leads", tags=TAGS, roles=READ, query=LeadQuery,
            response=LeadPage, path_params=NAME, errors=(404, 501),
            description="In id order (the order they were imported); `status` filters.")
async def list_leads(req: ApiRequest) -> LeadPage:
    out = outbound(req)
    run = run_of(_control(out), req.path["name"])
    q: LeadQuery = req.query
    after = _after_id(q.cursor)
    rows = list(await _leads(out).page(run.name, status=q.status, after_id=after, limit=q.limit + 1))
    page = rows[: q.limit]
    next_link = req.url_with(cursor=encode_cursor(str(page[-1].id)), limit=q.limit) if len(rows) > q.limit else None
    return LeadPage(items=[lead_out(lead) for lead in page], next=next_link)


# -- do-not-call ----------------------------------------------------------------------------------------------------------


def _number(raw: str, region: str | None, loc: list[str]) -> str:
    """A DNC number as E.164 (lenient: a possible number is enough), or a 422 at ``loc``."""
    try:
        return to_e164(raw, region or "ZZ", strict=False)
    except InvalidNumber as exc:
        hint = "" if region or raw.startswith("+") else " (give it with its country code, e.g. +31..., or `region`)"
        raise ApiError(422, "invalid_number", f"{'.'.join(loc)}: {exc}{hint}",
                       [{"loc": loc, "message": str(exc), "type": "invalid_number"}]) from None


def _list_scope(req: ApiRequest, out: OutboundServices) -> tuple[str | None, str | None]:
    """(campaign or None for the global list, the default region of its numbers)."""
    if "name" not in req.path:
        return None, out.region()
    run = run_of(_control(out), req.path["name"])
    return run.name, run.config.default_region


async def _dnc_list(req: ApiRequest) -> DncPage:
    out = outbound(req)
    campaign, region = _list_scope(req, out)
    store = _dnc(out)
    q: DncQuery = req.query
    number = _number(q.number, q.region or region, ["query", "number"]) if q.number is not None else None
    after = _after_id(q.cursor)
    rows = list(await store.entries(campaign, number=number, after_id=after, limit=q.limit + 1, now=out.clock()))
    page = rows[: q.limit]
    next_link = req.url_with(cursor=encode_cursor(str(page[-1].id)), limit=q.limit) if len(rows) > q.limit else None
    return DncPage(items=[dnc_out(e) for e in page], next=next_link)


async def _dnc_add(req: ApiRequest) -> Reply:
    out = outbound(req)
    campaign, region = _list_scope(req, out)
    store = _dnc(out)
    body: DncAddBody = req.body
    region = body.region or region
    number = _number(body.number, region, ["body", "number"])
    by = req.principal.name if req.principal is not None else "-"
    entry, created = await store.add(number, region=region or "ZZ", campaign=campaign, reason=body.reason,
                                     source=f"api:{by}", expires_at=body.expires_at)
    return Reply(DncAddOut(entry=dnc_out(entry), created=created), status=201 if created else 200)


async def _dnc_remove(req: ApiRequest) -> None:
    out = outbound(req)
    campaign, region = _list_scope(req, out)
    store = _dnc(out)
    q: DncRemoveQuery = req.query
    region = q.region or region
    number = _number(req.path["number"], region, ["path", "number"])
    by = req.principal.name if req.principal is not None else "-"
    removed = await store.remove(number, region=region or "ZZ", campaign=campaign,
                                 reason=f"{q.reason} (api:{by})".strip() if q.reason else f"api:{by}")
    if not removed:
        scope = "the global do-not-call list" if campaign is None else f"campaign {campaign}'s do-not-call list"
        raise ApiError(404, "not_found", f"{number} is not on {scope}", {"resource": "dnc entry", "id": number})


_DNC_ADD_TEXT = ("Numbers are normalised to E.164 leniently (a possible number is enough: the list must block "
                 "anything that might be dialled). 201 when added; 200 when it was listed already (a later "
                 "`expires_at`, or none, extends the entry). Checked at dial time by every campaign.")

for _prefix, _scope, _params in (("/dnc", "the global", {}), ("/campaigns/{name}/dnc", "a campaign's", NAME)):
    _suffix = "" if not _params else "_campaign"
    _errors = (501,) if not _params else (404, 501)
    routes.get(_prefix, summary=f"Entries of {_scope} do-not-call list", tags=DNC_TAGS, roles=READ, query=DncQuery,
               response=DncPage, path_params=_params, errors=(*_errors, 422),
               operation_id=f"list_dnc{_suffix}",
               description="Active entries (not removed, not expired), in the order they were added; `number` "
                           "gives one number's entry.")(_dnc_list)
    routes.post(_prefix, summary=f"Add a number to {_scope} do-not-call list", tags=DNC_TAGS, roles=READ,
                body=DncAddBody, response=DncAddOut, status=201, other_statuses=(200,), path_params=_params,
                errors=_errors,
                operation_id=f"add_dnc{_suffix}", description=_DNC_ADD_TEXT)(_dnc_add)
    routes.delete(_prefix + "/{number}", summary=f"Remove a number from {_scope} do-not-call list", tags=DNC_TAGS,
                  roles=SUPERVISORS, query=DncRemoveQuery, response=None,
                  path_params={**_params, "number": PathNumber}, errors=(404, 501),
                  operation_id=f"remove_dnc{_suffix}",
                  description="The entry is kept for audits, marked removed (with `reason`). 404 when the number "
                              "is not listed.")(_dnc_remove)


# -- dispositions of campaign calls ---------------------------------------------------------------------------------


@routes.post("/agents/{agent_id}/campaign-disposition", summary="Record the disposition of a campaign call",
             tags=TAGS, roles=SELF, body=CampaignDispositionBody, response=CampaignDispositionOut, status=201,
             path_params={"agent_id": AgentId}, agent_param="agent_id", errors=(404, 409, 501),
             description="For outbound campaign calls (the call id is the dial attempt's): the lead moves on by the "
                         "campaign's disposition rules: closed (`done`), on a do-not-call list (`dnc`), a scheduled "
                         "callback (`callback`, needs `callback_at`) or retried later (`pending`). Also stored as a "
                         "`disposition` call event. 409 while the call is still ringing or waiting for an agent; "
                         "422 `invalid` for a disposition the campaign does not have or an uncallable callback "
                         "time.")
async def campaign_disposition(req: ApiRequest) -> CampaignDispositionOut:
    out = outbound(req)
    sink: DispositionSink = part(out.dispositions, "campaign dispositions")
    agent_id = req.path["agent_id"]
    _agent_known(req, agent_id)
    body: CampaignDispositionBody = req.body
    with outbound_errors():
        result = await sink.set_disposition(body.call_id, body.disposition, agent_id=agent_id,
                                            notes=body.notes or "", callback_at=body.callback_at,
                                            callback_owner=body.callback_owner)
    by = req.principal.name if req.principal else None
    event = CallEvent(body.call_id, "disposition", out.clock(),
                      data={"agent": agent_id, "disposition": body.disposition, "notes": body.notes, "by": by,
                            "campaign": result.campaign, "lead_id": result.lead_id, "lead_status": result.status})
    if req.services.sink is not None:
        req.services.sink.emit(event)
    return CampaignDispositionOut(
        event_id=event.event_id, call_id=body.call_id, agent_id=agent_id, campaign=result.campaign,
        lead_id=result.lead_id, disposition=body.disposition, lead_status=result.status,
        next_attempt_at=result.next_attempt_at, callback_id=result.callback_id, at=event.at)


# -- preview ------------------------------------------------------------------------------------------------------------

PREVIEW = {"agent_id": AgentId, "lead_id": LeadId}


def _preview(out: OutboundServices) -> PreviewControl:
    control: PreviewControl = part(out.preview, "preview dialling")
    return control


@routes.get("/agents/{agent_id}/preview", summary="The lead reserved for an agent to preview", tags=PREVIEW_TAGS,
            roles=SELF, response=PreviewOut, path_params={"agent_id": AgentId}, agent_param="agent_id",
            errors=(404, 409, 501),
            description="Preview campaigns: the next callable lead of a campaign the agent serves, reserved for "
                        "it until `reserved_until` (asking again returns the same lead). Then `dial` or `skip` it. A due "
                        "scheduled callback comes first (the agent's own, then one any agent may take): `callback` "
                        "then says so, for whom and when it was promised, and its note. "
                        "`lead` is null when no lead is callable now.")
async def get_preview(req: ApiRequest) -> PreviewOut:
    out = outbound(req)
    preview = _preview(out)
    agent_id = req.path["agent_id"]
    _agent_known(req, agent_id)
    with outbound_errors():
        offer = await preview.next_lead(agent_id)
    if offer is None:
        return PreviewOut(agent_id=agent_id, campaign=None, lead=None, reserved_until=None, callback=None, script="",
                          dispositions={})
    cfg: CampaignConfig | None = None
    if out.campaigns is not None:
        try:
            cfg = out.campaigns.run_of(offer.campaign).config
        except KeyError:
            cfg = None
    cb = offer.callback
    callback = None if cb is None else PreviewCallbackOut(
        id=cb.id, owner_agent=cb.owner_agent, due_at=cb.due_at, due_local=cb.due_local, timezone=cb.timezone,
        note=cb.note)
    return PreviewOut(agent_id=agent_id, campaign=offer.campaign, lead=lead_out(offer.lead),
                      reserved_until=offer.reserved_until, callback=callback, script=cfg.script if cfg else "",
                      dispositions=dispositions_of(cfg) if cfg else {})


@routes.post("/agents/{agent_id}/preview/{lead_id}/dial", summary="Dial the previewed lead", tags=PREVIEW_TAGS,
             roles=SELF, response=PreviewActionOut, status=201, path_params=PREVIEW, agent_param="agent_id",
             errors=(404, 409, 501),
             description="The lead must be the one reserved for this agent. Checked once more right before "
                         "dialling (do-not-call, calling windows): 409 with the reason when it may not be dialled.")
async def dial_preview(req: ApiRequest) -> PreviewActionOut:
    out = outbound(req)
    preview = _preview(out)
    agent_id, lead_id = req.path["agent_id"], req.path["lead_id"]
    _agent_known(req, agent_id)
    with outbound_errors():
        call_id = await preview.dial(agent_id, lead_id)
    return PreviewActionOut(agent_id=agent_id, lead_id=lead_id, action="dial", call_id=call_id)


@routes.post("/agents/{agent_id}/preview/{lead_id}/skip", summary="Skip the previewed lead", tags=PREVIEW_TAGS,
             roles=SELF, body=SkipBody, response=PreviewActionOut, path_params=PREVIEW, agent_param="agent_id",
             errors=(404, 409, 501),
             description="The lead goes back undialled (still due); the agent may ask for the next one.")
async def skip_preview(req: ApiRequest) -> PreviewActionOut:
    out = outbound(req)
    preview = _preview(out)
    agent_id, lead_id = req.path["agent_id"], req.path["lead_id"]
    _agent_known(req, agent_id)
    body: SkipBody = req.body
    with outbound_errors():
        await preview.skip(agent_id, lead_id, reason=body.reason)
    return PreviewActionOut(agent_id=agent_id, lead_id=lead_id, action="skip", call_id=None)


__all__ = ["CampaignName", "LeadOut", "campaign_out", "lead_out", "outbound", "outbound_errors", "part", "routes"]
