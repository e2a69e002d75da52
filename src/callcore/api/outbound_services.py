"""What the campaign, lead, do-not-call, preview and callback endpoints need from the rest of callcore.

Like :mod:`callcore.api.services`, as Protocols: the handlers hold no telephony logic. The data parts have
PostgreSQL implementations here (over ``callcore.leads``); the live parts are implemented elsewhere.

| Protocol | implemented by | status |
|---|---|---|
| :class:`CampaignControl` | ``dialer.service.DialerService`` (``runs``, ``run_of``, ``status``, ``start``/``pause``/``stop``) | complete |
| :class:`CampaignDefinitions` | ``campaigns.catalog.CampaignCatalog`` (``campaigns`` table + the dialer) | complete |
| :class:`LeadStore` | :class:`PgLeadStore` (``leads.store``, ``leads.csv_import``) | complete |
| :class:`DncStore` | :class:`PgDncStore` (``leads.dnc``) | complete |
| :class:`DispositionSink` | :class:`PgDispositionSink` (``leads.store.set_disposition``; attempt id = call id) | complete |
| :class:`PreviewControl` | to be written (preview mode of the dialer) | missing |
| :class:`CallbackScheduler` | to be written on the ACD (virtual-hold-like queue entries) | missing |
| :class:`CallbackQuota` | :class:`PgCallbackQuota` (PostgreSQL, survives restarts) | complete |

Wiring, in the composition root, before ``api.start()`` (like ``live_events.EVENT_HUB``)::

    api.app[OUTBOUND] = OutboundServices(
        campaigns=dialer, leads=PgLeadStore(pool), dnc=PgDncStore(pool),
        dispositions=PgDispositionSink(pool, dialer), preview=..., callbacks=..., quota=PgCallbackQuota(pool),
        callback_settings=cfg.callbacks, default_region=...,
        definitions=CampaignCatalog(pool, dialer, ...))  # campaigns.catalog: POST/PUT /campaigns

Without it every one of these endpoints answers 501 ``not_implemented``; a part left None makes the endpoints
that need it answer 501 too.

Errors: services raise :class:`~callcore.api.services.NotFound` (→ 404), :class:`~callcore.api.services.Rejected`
(→ 409) or :class:`Invalid` (→ 422), with a message for the client; the dialer raises ``DialerError`` (→ 409)
and ``KeyError`` for an unknown campaign (→ 404).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO, Any, Literal, Protocol

from aiohttp import web

from callcore.api.callbacks_config import CallbacksSettings
from callcore.api.services import NotFound, Rejected, ServiceError
from callcore.campaigns.model import CampaignConfig
from callcore.events import utcnow
from callcore.leads import dnc as dnc_lists
from callcore.leads import store as lead_store
from callcore.leads.csv_import import ImportReport, import_leads
from callcore.leads.dnc import DncEntry
from callcore.leads.store import Lead, LedgerWindow

DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024


class Invalid(ServiceError):
    """The request names things that exist but does not make sense for them (HTTP 422): a disposition the
    campaign does not have, a callback time outside the calling windows."""


# -- campaigns -----------------------------------------------------------------------------------------------


class CampaignRunView(Protocol):
    """One campaign as the dialer runs it (``dialer.service.CampaignRun``)."""

    @property
    def name(self) -> str: ...

    @property
    def config(self) -> CampaignConfig: ...

    @property
    def state(self) -> str: ...  # stopped | running | paused


class CampaignControl(Protocol):
    """The dialer (``DialerService``): every configured campaign, running or not."""

    @property
    def runs(self) -> Mapping[str, CampaignRunView]: ...

    def run_of(self, name: str) -> CampaignRunView:
        """KeyError for an unknown campaign."""
        ...

    def status(self, name: str) -> Mapping[str, Any]:
        """{campaign, state, mode, in_flight, connected, dialed, last_decision}."""
        ...

    async def start(self, name: str) -> None:
        """stopped/paused → running. ``DialerError`` when the campaign may not run (disabled, preview mode, no
        queue); running already: nothing happens."""
        ...

    async def pause(self, name: str) -> None:
        """Stop launching calls; calls in progress go on."""
        ...

    async def stop(self, name: str) -> None: ...


class StoredDefinition(Protocol):
    """An API campaign as stored (``campaigns.catalog.StoredCampaign``)."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> int: ...


class CampaignDefinitions(Protocol):
    """Campaigns created through the API (``campaigns.catalog.CampaignCatalog``); the config file's are not
    theirs to change."""

    def source(self, name: str) -> Literal["config", "api"]: ...

    def version(self, name: str) -> int | None:
        """The stored version of an API campaign; None for the config file's."""
        ...

    async def create(self, name: str, config: CampaignConfig, *, by: str) -> tuple[StoredDefinition, list[str]]:
        """Validate (Invalid), store, add to the dialer (stopped) → (stored, warnings). Rejected: the name is the
        config file's or taken."""
        ...

    async def update(self, name: str, config: CampaignConfig, *, by: str,
                     expected_version: int | None = None) -> tuple[StoredDefinition, list[str]]:
        """Validate, store (version + 1), hand to the dialer. NotFound: unknown; Rejected: the config file's, or
        not at ``expected_version``; DialerError: running and mode/queue would change."""
        ...


# -- leads ------------------------------------------------------------------------------------------------------


class LeadStore(Protocol):
    async def counts(self, campaign: str) -> Mapping[str, int]:
        """Leads of the campaign by status (statuses without leads may be absent)."""
        ...

    async def current_window(self, campaign: str, config: CampaignConfig, *, now: datetime) -> LedgerWindow:
        """The abandonment ledger's rolling window ending ``now``."""
        ...

    async def page(self, campaign: str, *, status: str | None, after_id: int | None, limit: int) -> Sequence[Lead]:
        """Up to ``limit`` leads with ``id > after_id`` in id order (``status``: only those)."""
        ...

    async def import_csv(self, campaign: str, config: CampaignConfig, source: IO[bytes], *, source_name: str,
                         phone_column: str | None = None, encoding: str = "utf-8-sig",
                         delimiter: str | None = None) -> ImportReport:
        """``leads.csv_import.import_leads``: raises LeadFileError when nothing could be imported."""
        ...


class PgLeadStore:
    """:class:`LeadStore` over ``callcore.leads`` (PostgreSQL)."""

    def __init__(self, db: Any) -> None:
        self.db = db

    async def counts(self, campaign: str) -> Mapping[str, int]:
        return await lead_store.lead_counts(self.db, campaign)

    async def current_window(self, campaign: str, config: CampaignConfig, *, now: datetime) -> LedgerWindow:
        return await lead_store.current_abandon_rate(self.db, campaign, config, now=now)

    async def page(self, campaign: str, *, status: str | None, after_id: int | None, limit: int) -> Sequence[Lead]:
        rows = await self.db.fetch(
            "SELECT * FROM leads WHERE campaign = $1 AND ($2::text IS NULL OR status = $2) AND id > $3 "
            "ORDER BY id LIMIT $4", campaign, status, after_id or 0, limit)
        return [lead_store._lead(r) for r in rows]

    async def import_csv(self, campaign: str, config: CampaignConfig, source: IO[bytes], *, source_name: str,
                         phone_column: str | None = None, encoding: str = "utf-8-sig",
                         delimiter: str | None = None) -> ImportReport:
        return await import_leads(self.db, campaign, config, source, source_name=source_name,
                                  phone_column=phone_column, encoding=encoding, delimiter=delimiter)


# -- do-not-call --------------------------------------------------------------------------------------------------


class DncStore(Protocol):
    """The global list (``campaign`` None) and the campaigns' lists. Numbers: ``InvalidNumber`` when not even a
    possible number."""

    async def entries(self, campaign: str | None, *, number: str | None, after_id: int | None, limit: int,
                      now: datetime) -> Sequence[DncEntry]:
        """Active entries of one list (``number``: an E.164 number, only its entry), ``id > after_id``, by id."""
        ...

    async def add(self, number: str, *, region: str, campaign: str | None, reason: str, source: str,
                  expires_at: datetime | None) -> tuple[DncEntry, bool]:
        """(entry, created); a number already listed keeps its entry (the later expiry wins)."""
        ...

    async def remove(self, number: str, *, region: str, campaign: str | None, reason: str) -> int:
        """How many entries were removed (0 or 1); the row stays for audits."""
        ...

    async def check(self, number: str, *, region: str, campaign: str | None) -> Sequence[DncEntry]:
        """The active entries blocking the number: the global list's and ``campaign``'s (None: global only)."""
        ...


class PgDncStore:
    """:class:`DncStore` over ``callcore.leads.dnc``."""

    def __init__(self, db: Any) -> None:
        self.db = db

    async def entries(self, campaign: str | None, *, number: str | None, after_id: int | None, limit: int,
                      now: datetime) -> Sequence[DncEntry]:
        rows = await self.db.fetch(
            "SELECT * FROM dnc_entries WHERE campaign IS NOT DISTINCT FROM $1 AND removed_at IS NULL "
            "AND (expires_at IS NULL OR expires_at > $2) AND ($3::text IS NULL OR number = $3) AND id > $4 "
            "ORDER BY id LIMIT $5", campaign, now, number, after_id or 0, limit)
        return [dnc_lists._entry(r) for r in rows]

    async def add(self, number: str, *, region: str, campaign: str | None, reason: str, source: str,
                  expires_at: datetime | None) -> tuple[DncEntry, bool]:
        return await dnc_lists.add(self.db, number, region=region, campaign=campaign, reason=reason, source=source,
                                   expires_at=expires_at)

    async def remove(self, number: str, *, region: str, campaign: str | None, reason: str) -> int:
        return await dnc_lists.remove(self.db, number, region=region, campaign=campaign, reason=reason)

    async def check(self, number: str, *, region: str, campaign: str | None) -> Sequence[DncEntry]:
        return await dnc_lists.check(self.db, number, region=region, campaign=campaign)


# -- dispositions of campaign calls -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DispositionResult:
    """What a disposition did: the lead's new status (``done``, ``dnc``, ``callback``, ``pending``, ...)."""

    campaign: str
    lead_id: int | None
    status: str | None
    next_attempt_at: datetime | None = None
    callback_id: int | None = None


class DispositionSink(Protocol):
    async def set_disposition(self, call_id: uuid.UUID, disposition: str, *, agent_id: str, notes: str = "",
                              callback_at: datetime | None = None, callback_owner: str | None = None
                              ) -> DispositionResult:
        """Apply an agent's disposition to the campaign attempt whose id is ``call_id`` (the dialer uses the
        attempt id as the outbound call's id) and to its lead. ``callback_at``: aware, or a naive time on the
        callee's clock. NotFound: no campaign call with that id; Rejected: the call is still ringing or waiting
        for an agent, or another agent took it; Invalid: the campaign has no such disposition, or the callback
        time is missing, past or outside the calling windows."""
        ...


class PgDispositionSink:
    """:class:`DispositionSink` over ``leads.store.set_disposition``: the attempt row (``lead_attempts``) is
    found by its ``attempt_id``, which is the outbound call's id; its campaign's config comes from the dialer."""

    def __init__(self, db: Any, campaigns: CampaignControl, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.campaigns = campaigns
        self.clock = clock

    async def set_disposition(self, call_id: uuid.UUID, disposition: str, *, agent_id: str, notes: str = "",
                              callback_at: datetime | None = None, callback_owner: str | None = None
                              ) -> DispositionResult:
        row = await self.db.fetchrow("SELECT campaign, agent_id FROM lead_attempts WHERE attempt_id = $1", call_id)
        if row is None:
            for run in self.campaigns.runs.values():
                if call_id in getattr(run, "attempts", {}):
                    raise Rejected(f"call {call_id} of campaign {run.name} is not over yet: give its disposition "
                                   "when it has ended (in wrap-up)", {"call_id": str(call_id)})
            raise NotFound(f"no campaign call {call_id}", {"resource": "campaign call", "id": str(call_id)})
        campaign = row["campaign"]
        if row["agent_id"] is not None and row["agent_id"] != agent_id:
            raise Rejected(f"call {call_id} was taken by agent {row['agent_id']!r}, not {agent_id!r}",
                           {"call_id": str(call_id), "agent": row["agent_id"]})
        try:
            config = self.campaigns.run_of(campaign).config
        except KeyError:
            raise Rejected(f"campaign {campaign!r} is no longer in the config") from None
        try:
            update = await lead_store.set_disposition(
                self.db, campaign, config, call_id, disposition, agent_id=agent_id, now=self.clock(),
                callback_at=callback_at, callback_owner=callback_owner, note=notes)
        except KeyError as exc:
            raise Invalid(str(exc.args[0]) if exc.args else str(exc),
                          {"campaign": campaign, "dispositions": list(config.dispositions)}) from None
        except ValueError as exc:
            raise Invalid(str(exc), {"campaign": campaign}) from None
        return DispositionResult(campaign, update.lead_id, update.status, update.next_attempt_at, update.callback_id)


# -- preview ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreviewCallback:
    """The offer is a scheduled callback: what the agent needs to open the call ("you asked us to call back")."""

    id: int
    owner_agent: str | None  # the agent it was promised by/for; None: any agent of the campaign
    due_at: datetime  # UTC
    due_local: str  # as agreed on the callee's clock
    timezone: str
    note: str


@dataclass(frozen=True)
class PreviewOffer:
    """A lead reserved for one agent to look at before dialling; ``callback`` set when it is a scheduled callback."""

    campaign: str
    lead: Lead
    reserved_until: datetime
    callback: PreviewCallback | None = None


class PreviewControl(Protocol):
    async def next_lead(self, agent_id: str) -> PreviewOffer | None:
        """The lead reserved for this agent: the one it already holds (same reservation), else the next callable
        lead of a preview campaign the agent serves (``claim_due_leads(..., agent_guaranteed=True, limit=1)``),
        reserved for the campaign's ``preview_seconds`` (or a default). None: no lead is callable now. NotFound:
        unknown agent; Rejected: the agent is not logged in or serves no preview campaign."""
        ...

    async def dial(self, agent_id: str, lead_id: int) -> uuid.UUID:
        """Dial the lead this agent holds; returns the call id (= the attempt id). NotFound: the agent holds no
        such lead; Rejected: the reservation ran out, or ``leads.store.may_dial`` refuses now (do-not-call,
        outside the calling windows): its reason is the message."""
        ...

    async def skip(self, agent_id: str, lead_id: int, *, reason: str) -> None:
        """Give the lead back undialled (``pending``, still due). NotFound: the agent holds no such lead."""
        ...


# -- "call me now" callbacks ------------------------------------------------------------------------------------------

CallbackState = Literal["waiting", "dialing", "connected", "done", "failed", "cancelled", "expired"]


@dataclass(frozen=True)
class CallbackTicket:
    """An accepted callback: its id, when the scheduler expects to dial it (now + the queue's estimated wait, not
    before ``not_before``; the API adds ``callbacks.promise_margin`` to promise a time) and its place in line."""

    id: str
    promised_at: datetime
    position: int


@dataclass(frozen=True)
class CallbackStatus:
    id: str
    status: CallbackState
    queue: str
    number: str
    position: int | None = None  # in line, while waiting
    estimated_at: datetime | None = None  # when it should be dialled, by the live estimate, while waiting
    requested_by: str = ""  # the API token's name
    created_at: datetime | None = None
    attempts: int = 0


class CallbackScheduler(Protocol):
    """"Call me now" requests as queue entries that keep a place in line (like virtual hold, ``acd.virtual_hold``):
    when an agent is (about to be) free the number is dialled with the agent reserved, and the agent hears the
    ``context`` before the callee is connected."""

    async def request(self, number: str, queue: str, context: Mapping[str, str], not_before: datetime | None,
                      not_after: datetime | None, *, requested_by: str = "") -> CallbackTicket:
        """Put the E.164 ``number`` (already normalised, allow-listed, rate-limited and checked against the
        do-not-call list by the API) in line in ``queue``; never dial before ``not_before`` nor after
        ``not_after`` (then the callback ends ``expired``). ``context``: page, product, note (short strings,
        for the agent). NotFound: unknown queue. Rejected: nobody can call back (no agent serves the queue, the
        queue is closed or full) or not within the window; the message says why."""
        ...

    async def status(self, callback_id: str) -> CallbackStatus:
        """NotFound for an unknown id."""
        ...

    async def cancel(self, callback_id: str) -> CallbackStatus:
        """Take a waiting callback out of line (→ ``cancelled``). NotFound: unknown id; Rejected: it is being
        dialled or is over."""
        ...

    def pending(self) -> int:
        """Callbacks waiting or being dialled now (the API refuses new ones at ``callbacks.max_pending``)."""
        ...


class CallbackQuota(Protocol):
    """Accepted callback requests per number, kept where a restart does not forget them."""

    async def recent(self, number: str, since: datetime) -> list[datetime]:
        """When requests for ``number`` were accepted after ``since``, oldest first."""
        ...

    async def record(self, number: str, callback_id: str, at: datetime) -> None: ...


class PgCallbackQuota:
    """:class:`CallbackQuota` in PostgreSQL, in the API's expiring key store (``idempotency_keys``): one row per
    accepted request, under an owner derived from the number (a SHA-256, not the number itself), expiring after
    ``keep`` (a day and an hour: the per-day window) and purged with the Idempotency-Keys."""

    ROUTE = "POST /callbacks"

    def __init__(self, db: Any, *, keep: timedelta = timedelta(hours=25)) -> None:
        self.db = db
        self.keep = keep

    @staticmethod
    def owner(number: str) -> str:
        return "callbacks/number:" + hashlib.sha256(number.encode()).hexdigest()[:40]

    async def recent(self, number: str, since: datetime) -> list[datetime]:
        rows = await self.db.fetch(
            "SELECT created_at FROM idempotency_keys WHERE owner = $1 AND created_at > $2 ORDER BY created_at",
            self.owner(number), since)
        return [r["created_at"] for r in rows]

    async def record(self, number: str, callback_id: str, at: datetime) -> None:
        await self.db.execute(
            "INSERT INTO idempotency_keys (owner, key, route, body_hash, status, created_at, expires_at)"
            " VALUES ($1, $2, $3, '-', 201, $4, $5) ON CONFLICT (owner, key) DO NOTHING",
            self.owner(number), callback_id, self.ROUTE, at, at + self.keep)


# -- what the app carries ----------------------------------------------------------------------------------------------


@dataclass
class OutboundServices:
    """Everything the outbound endpoints use; None: not wired (the endpoints using it answer 501)."""

    campaigns: CampaignControl | None = None
    definitions: CampaignDefinitions | None = None  # POST /campaigns, PUT /campaigns/{name}
    leads: LeadStore | None = None
    dnc: DncStore | None = None
    dispositions: DispositionSink | None = None
    preview: PreviewControl | None = None
    callbacks: CallbackScheduler | None = None
    quota: CallbackQuota | None = None
    callback_settings: CallbacksSettings = field(default_factory=CallbacksSettings)
    default_region: str | None = None  # global DNC list: how numbers without +CC are read (None: callbacks')
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES  # CSV uploads (POST /campaigns/{name}/leads)
    clock: Callable[[], datetime] = utcnow
    monotonic: Callable[[], float] = time.monotonic  # the rate limiters' clock
    limiters: dict[str, Any] = field(default_factory=dict, repr=False)  # the API's own rate limiters

    def region(self) -> str | None:
        return self.default_region or self.callback_settings.default_region


OUTBOUND = web.AppKey("outbound", OutboundServices)


def outbound_of(request: web.Request) -> OutboundServices | None:
    return request.app.get(OUTBOUND)


__all__ = [
    "DEFAULT_MAX_UPLOAD_BYTES",
    "OUTBOUND",
    "CallbackQuota",
    "CallbackScheduler",
    "CallbackState",
    "CallbackStatus",
    "CallbackTicket",
    "CampaignControl",
    "CampaignDefinitions",
    "CampaignRunView",
    "DispositionResult",
    "DispositionSink",
    "DncStore",
    "Invalid",
    "LeadStore",
    "OutboundServices",
    "PgCallbackQuota",
    "PgDispositionSink",
    "PgDncStore",
    "PgLeadStore",
    "PreviewCallback",
    "PreviewControl",
    "PreviewOffer",
    "outbound_of",
]
