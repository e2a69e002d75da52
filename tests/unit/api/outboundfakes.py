"""Fakes of the outbound Protocols (callcore.api.outbound_services) and an API client with them wired."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import IO, Any

from aiohttp.test_utils import TestClient, TestServer

from callcore.api.auth import Authenticator
from callcore.api.callbacks_config import CallbacksSettings
from callcore.api.idempotency import IdempotencyStore, MemoryIdempotencyStore
from callcore.api.metrics import Metrics
from callcore.api.outbound_services import (
    OUTBOUND,
    CallbackStatus,
    CallbackTicket,
    DispositionResult,
    Invalid,
    OutboundServices,
    PreviewOffer,
)
from callcore.api.server import create_app
from callcore.api.services import NotFound, Rejected
from callcore.campaigns.model import CampaignConfig
from callcore.dialer.service import DialerError
from callcore.leads.csv_import import ImportReport, RowProblem
from callcore.leads.dnc import DncEntry
from callcore.leads.phone import to_e164
from callcore.leads.store import Lead, LedgerWindow
from tests.unit.api.apifakes import Api, World, static_tokens, world

NOW = datetime(2026, 3, 10, 10, 0, tzinfo=timezone.utc)  # a Tuesday, 11:00 in Amsterdam
CALL_OUT = uuid.UUID("01900000-0000-7000-8000-0000000000c1")


def campaign_config(**overrides: Any) -> CampaignConfig:
    data: dict[str, Any] = {"caller_id": "+31881234567", "default_region": "NL", "timezone": "Europe/Amsterdam",
                            "queue": "sales", "script": "Goedendag, u spreekt met ...",
                            "windows": [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                                         "hours": "08:00-21:00"}]}
    data.update(overrides)
    return CampaignConfig.model_validate(data)


@dataclass
class FakeRun:
    name: str
    config: CampaignConfig
    state: str = "stopped"
    attempts: dict[uuid.UUID, Any] = field(default_factory=dict)


class FakeDialer:
    """CampaignControl like DialerService: start refuses disabled and preview campaigns."""

    def __init__(self, configs: Mapping[str, CampaignConfig] | None = None) -> None:
        configs = configs if configs is not None else {
            "retention": campaign_config(description="Klantbehoud"),
            "survey": campaign_config(mode="preview", description="Tevredenheid"),
            "winback": campaign_config(enabled=False),
        }
        self.runs: dict[str, FakeRun] = {name: FakeRun(name, cfg) for name, cfg in configs.items()}
        self.calls: list[tuple[str, str]] = []

    def run_of(self, name: str) -> FakeRun:
        run = self.runs.get(name)
        if run is None:
            raise KeyError(f"unknown campaign {name!r}")
        return run

    def status(self, name: str) -> dict[str, Any]:
        run = self.run_of(name)
        return {"campaign": name, "state": run.state, "mode": run.config.mode, "in_flight": 1, "connected": 2,
                "dialed": 3, "last_decision": "progressive: 1 ready"}

    async def start(self, name: str) -> None:
        run = self.run_of(name)
        if not run.config.enabled:
            raise DialerError(f"campaign {name!r} is disabled in the config")
        if run.config.mode == "preview":
            raise DialerError("preview campaigns are dialled by their agents, one lead at a time")
        self.calls.append(("start", name))
        run.state = "running"

    async def pause(self, name: str) -> None:
        self.calls.append(("pause", name))
        self.run_of(name).state = "paused"

    async def stop(self, name: str) -> None:
        self.calls.append(("stop", name))
        self.run_of(name).state = "stopped"

    # Like DialerService's methods for API campaigns.
    def add_campaign(self, name: str, config: CampaignConfig) -> FakeRun:
        if name in self.runs:
            raise DialerError(f"campaign {name!r} exists already")
        run = self.runs[name] = FakeRun(name, config)
        return run

    def check_config_change(self, name: str, config: CampaignConfig) -> None:
        run = self.run_of(name)
        if run.state == "running" and (config.mode, config.queue) != (run.config.mode, run.config.queue):
            raise DialerError(f"campaign {name!r} is running: pause or stop it first")

    def replace_config(self, name: str, config: CampaignConfig) -> None:
        self.check_config_change(name, config)
        self.run_of(name).config = config


@dataclass(frozen=True)
class FakeStored:
    name: str
    version: int


class FakeDefinitions:
    """CampaignDefinitions in memory over a FakeDialer (the real one, campaigns.catalog, is tested on PostgreSQL):
    ``api_owned`` names are the API's, every other campaign of the dialer the config file's."""

    def __init__(self, dialer: FakeDialer, api_owned: Sequence[str] = ()) -> None:
        self.dialer = dialer
        self.versions: dict[str, int] = {n: 1 for n in api_owned}

    def source(self, name: str) -> str:
        return "api" if name in self.versions else "config"

    def version(self, name: str) -> int | None:
        return self.versions.get(name)

    async def create(self, name: str, config: CampaignConfig, *, by: str) -> tuple[FakeStored, list[str]]:
        if name in self.dialer.runs:
            raise Rejected(f"campaign {name!r} exists already")
        self.dialer.add_campaign(name, config)
        self.versions[name] = 1
        return FakeStored(name, 1), []

    async def update(self, name: str, config: CampaignConfig, *, by: str,
                     expected_version: int | None = None) -> tuple[FakeStored, list[str]]:
        if name not in self.versions:
            if name in self.dialer.runs:
                raise Rejected(f"campaign {name!r} is defined in the config file; change it there and reload")
            raise NotFound(f"no campaign {name!r}", {"resource": "campaign", "id": name})
        if expected_version is not None and expected_version != self.versions[name]:
            raise Rejected("changed meanwhile", {"version": self.versions[name]})
        self.dialer.replace_config(name, config)
        self.versions[name] += 1
        return FakeStored(name, self.versions[name]), []


def lead(id: int, campaign: str = "retention", status: str = "pending", number: str | None = None) -> Lead:
    return Lead(id=id, campaign=campaign, number=number or f"+3161234{id:04d}", timezone="Europe/Amsterdam",
                timezones=("Europe/Amsterdam",), tz_source="number", name=f"Klant {id}", fields={"plan": "basis"},
                status=status, priority=0, attempts=0, last_outcome=None, last_attempt_at=None, next_attempt_at=NOW,
                disposition=None, source_line=id + 1)


class FakeLeads:
    def __init__(self) -> None:
        self.leads = [lead(i, status="pending" if i % 3 else "done") for i in range(1, 8)]
        self.imports: list[dict[str, Any]] = []

    async def counts(self, campaign: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for x in self.leads:
            if x.campaign == campaign:
                out[x.status] = out.get(x.status, 0) + 1
        return out

    async def current_window(self, campaign: str, config: CampaignConfig, *, now: datetime) -> LedgerWindow:
        return LedgerWindow(now - timedelta(days=1), now, attempts=100, live_answers=40, abandoned=1, machine=30,
                            false_positives=0.0, limit=0.03)

    async def page(self, campaign: str, *, status: str | None, after_id: int | None, limit: int) -> list[Lead]:
        rows = [x for x in self.leads if x.campaign == campaign and (status is None or x.status == status)
                and x.id > (after_id or 0)]
        return sorted(rows, key=lambda x: x.id)[:limit]

    async def import_csv(self, campaign: str, config: CampaignConfig, source: IO[bytes], *, source_name: str,
                         phone_column: str | None = None, encoding: str = "utf-8-sig",
                         delimiter: str | None = None) -> ImportReport:
        data = source.read()
        self.imports.append({"campaign": campaign, "bytes": data, "source": source_name})
        report = ImportReport(campaign=campaign, source=source_name, import_id=uuid.uuid4(), phone_column="phone",
                              rows=2, imported=1)
        report.problems.append(RowProblem(3, "invalid", "12", "too short"))
        return report


class FakeDnc:
    """DncStore in memory (numbers normalised leniently, as the real one does)."""

    def __init__(self) -> None:
        self.entries_: list[DncEntry] = []
        self.removed: list[DncEntry] = []

    async def entries(self, campaign: str | None, *, number: str | None, after_id: int | None, limit: int,
                      now: datetime) -> list[DncEntry]:
        rows = [e for e in self.entries_ if e.campaign == campaign and (number is None or e.number == number)
                and e.id > (after_id or 0)]
        return rows[:limit]

    async def add(self, number: str, *, region: str, campaign: str | None, reason: str, source: str,
                  expires_at: datetime | None) -> tuple[DncEntry, bool]:
        e164 = to_e164(number, region, strict=False)
        for e in self.entries_:
            if e.number == e164 and e.campaign == campaign:
                return e, False
        entry = DncEntry(len(self.entries_) + len(self.removed) + 1, campaign, e164, reason, source, NOW, expires_at)
        self.entries_.append(entry)
        return entry, True

    async def remove(self, number: str, *, region: str, campaign: str | None, reason: str) -> int:
        e164 = to_e164(number, region, strict=False)
        for e in list(self.entries_):
            if e.number == e164 and e.campaign == campaign:
                self.entries_.remove(e)
                self.removed.append(e)
                return 1
        return 0

    async def check(self, number: str, *, region: str, campaign: str | None) -> list[DncEntry]:
        e164 = to_e164(number, region, strict=False)
        return [e for e in self.entries_ if e.number == e164 and (e.campaign is None or e.campaign == campaign)]


class FakeDispositions:
    def __init__(self) -> None:
        self.given: list[tuple[Any, ...]] = []
        self.fail: Exception | None = None

    async def set_disposition(self, call_id: uuid.UUID, disposition: str, *, agent_id: str, notes: str = "",
                              callback_at: datetime | None = None, callback_owner: str | None = None
                              ) -> DispositionResult:
        if self.fail is not None:
            raise self.fail
        self.given.append((call_id, disposition, agent_id, notes, callback_at, callback_owner))
        return DispositionResult("retention", 7, "done")


class FakePreview:
    def __init__(self) -> None:
        self.offers: dict[str, PreviewOffer] = {}
        self.dialled: list[tuple[str, int]] = []
        self.skipped: list[tuple[str, int, str]] = []
        self.refuse: str | None = None

    def reserve(self, agent_id: str, lead_id: int = 7) -> None:
        self.offers[agent_id] = PreviewOffer("survey", lead(lead_id, "survey"), NOW + timedelta(seconds=60))

    async def next_lead(self, agent_id: str) -> PreviewOffer | None:
        return self.offers.get(agent_id)

    def _held(self, agent_id: str, lead_id: int) -> PreviewOffer:
        offer = self.offers.get(agent_id)
        if offer is None or offer.lead.id != lead_id:
            raise NotFound(f"agent {agent_id} holds no lead {lead_id}")
        return offer

    async def dial(self, agent_id: str, lead_id: int) -> uuid.UUID:
        self._held(agent_id, lead_id)
        if self.refuse:
            raise Rejected(self.refuse)
        self.dialled.append((agent_id, lead_id))
        del self.offers[agent_id]
        return CALL_OUT

    async def skip(self, agent_id: str, lead_id: int, *, reason: str) -> None:
        self._held(agent_id, lead_id)
        self.skipped.append((agent_id, lead_id, reason))
        del self.offers[agent_id]


class FakeScheduler:
    """CallbackScheduler: every request waits in line; the estimate is now + 5 minutes per caller ahead."""

    def __init__(self, clock: Any = lambda: NOW) -> None:
        self.clock = clock
        self.requests: list[dict[str, Any]] = []
        self.items: dict[str, CallbackStatus] = {}
        self.estimate: timedelta | None = None  # fixed estimate (None: 5 minutes per position)
        self.refuse: str | None = None
        self.cancelled: list[str] = []

    async def request(self, number: str, queue: str, context: Mapping[str, str], not_before: datetime | None,
                      not_after: datetime | None, *, requested_by: str = "") -> CallbackTicket:
        if queue not in ("sales", "billing"):
            raise NotFound(f"queue {queue} not found")
        if self.refuse:
            raise Rejected(self.refuse)
        self.requests.append({"number": number, "queue": queue, "context": dict(context), "not_before": not_before,
                              "not_after": not_after, "requested_by": requested_by})
        position = self.pending() + 1
        start = max(self.clock(), not_before) if not_before else self.clock()
        at = start + (self.estimate if self.estimate is not None else timedelta(minutes=5 * position))
        cid = f"cb{len(self.requests)}"
        self.items[cid] = CallbackStatus(cid, "waiting", queue, number, position, at, requested_by, self.clock())
        return CallbackTicket(cid, at, position)

    async def status(self, callback_id: str) -> CallbackStatus:
        if callback_id not in self.items:
            raise NotFound(f"callback {callback_id} not found")
        return self.items[callback_id]

    async def cancel(self, callback_id: str) -> CallbackStatus:
        s = await self.status(callback_id)
        if s.status != "waiting":
            raise Rejected(f"callback {callback_id} is {s.status}: too late to cancel")
        self.cancelled.append(callback_id)
        s = self.items[callback_id] = CallbackStatus(s.id, "cancelled", s.queue, s.number, None, None,
                                                     s.requested_by, s.created_at, s.attempts)
        return s

    def pending(self) -> int:
        return sum(1 for s in self.items.values() if s.status in ("waiting", "dialing"))

    def add(self, cid: str, *, status: str = "waiting", requested_by: str = "integrator") -> None:
        self.items[cid] = CallbackStatus(cid, status, "sales", "+31612345678", 1 if status == "waiting" else None,
                                         NOW + timedelta(minutes=5), requested_by, NOW)  # type: ignore[arg-type]


class FakeQuota:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, datetime]] = []

    async def recent(self, number: str, since: datetime) -> list[datetime]:
        return sorted(at for n, _, at in self.rows if n == number and at > since)

    async def record(self, number: str, callback_id: str, at: datetime) -> None:
        self.rows.append((number, callback_id, at))


@dataclass
class Clocks:
    """The services' wall clock and the limiters' monotonic clock, moved together by tests."""

    now: datetime = NOW
    mono: float = 1000.0

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds


def callback_settings(**overrides: Any) -> CallbacksSettings:
    data: dict[str, Any] = {"default_region": "NL", "allowed_prefixes": ["+31"], "queue": "sales",
                            "allowed_queues": ["sales", "billing"]}
    data.update(overrides)
    return CallbacksSettings.model_validate(data)


def outbound(clocks: Clocks | None = None, **overrides: Any) -> OutboundServices:
    clocks = clocks or Clocks()
    dialer = overrides.get("campaigns") or FakeDialer()
    parts: dict[str, Any] = {
        "campaigns": dialer, "definitions": FakeDefinitions(dialer), "leads": FakeLeads(), "dnc": FakeDnc(), "dispositions": FakeDispositions(),
        "preview": FakePreview(), "callbacks": FakeScheduler(lambda: clocks.now), "quota": FakeQuota(),
        "callback_settings": callback_settings(), "default_region": "NL",
        "clock": lambda: clocks.now, "monotonic": lambda: clocks.mono,
    }
    parts.update(overrides)
    return OutboundServices(**parts)


async def start_outbound(out: OutboundServices | None, w: World | None = None, *,
                         idem: IdempotencyStore | None = None) -> Api:
    """The API app on the fakes of apifakes.world() plus ``out`` (None: not wired)."""
    w = w or world()
    metrics = Metrics()
    idem = idem if idem is not None else MemoryIdempotencyStore()
    app = create_app(w.services(), authenticator=Authenticator([static_tokens()]), idempotency=idem,
                     metrics=metrics, max_body_bytes=4096)
    if out is not None:
        app[OUTBOUND] = out
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return Api(client, w, metrics, idem)


def parts_of(out: OutboundServices) -> Sequence[Any]:
    return (out.campaigns, out.leads, out.dnc, out.dispositions, out.preview, out.callbacks, out.quota)


__all__ = [
    "CALL_OUT",
    "NOW",
    "Clocks",
    "FakeDefinitions",
    "FakeDialer",
    "FakeDispositions",
    "FakeDnc",
    "FakeLeads",
    "FakePreview",
    "FakeQuota",
    "FakeScheduler",
    "Invalid",
    "callback_settings",
    "campaign_config",
    "lead",
    "outbound",
    "start_outbound",
]
