"""Campaigns, leads, do-not-call lists, dispositions of campaign calls and preview over the HTTP API: every
route × every role, the behaviour of each endpoint on fakes, and the CSV upload, DNC lists and dispositions
against a real PostgreSQL (``pg_pool``)."""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest

from callcore.api import callbacks, campaigns
from callcore.api.outbound_services import (
    OutboundServices,
    PgDispositionSink,
    PgDncStore,
    PgLeadStore,
)
from callcore.api.services import NotFound, Rejected
from callcore.leads import store as lead_store
from callcore.leads.dnc import DncEntry
from callcore.leads.store import Attempt
from tests.unit.api.apifakes import CALL1, PRINCIPALS, Api
from tests.unit.api.outboundfakes import (
    CALL_OUT,
    NOW,
    Clocks,
    FakeDialer,
    Invalid,
    campaign_config,
    outbound,
    start_outbound,
)

ALL_BUT_AGENTS = {"admin", "supervisor", "integrator"}
SELF = {"admin", "supervisor", "agent", "integrator"}  # agent: a1's own token; other_agent (a2) is refused
SUPERVISORS = {"admin", "supervisor"}
CALLBACK_ROLES = {"admin", "supervisor", "integrator"}
CSV = "phone;name\n0612345678;Anna\n12;kort\n"


def nothing(out: OutboundServices) -> None:
    pass


def listed(out: OutboundServices) -> None:
    dnc = out.dnc
    dnc.entries_.append(DncEntry(1, None, "+31612345678", "", "api", NOW, None))  # type: ignore[union-attr]
    dnc.entries_.append(DncEntry(2, "retention", "+31612345678", "", "api", NOW, None))  # type: ignore[union-attr]


def reserved(out: OutboundServices) -> None:
    out.preview.reserve("a1", 7)  # type: ignore[union-attr]


def api_owned(out: OutboundServices) -> None:
    out.definitions.versions["retention"] = 1  # type: ignore[union-attr]


NEW_CAMPAIGN = {"name": "upsell", "caller_id": "+31881234567", "default_region": "NL", "queue": "sales"}
NEW_CONFIG = {"caller_id": "+31881234568", "default_region": "NL", "queue": "sales"}


def callback_waiting(out: OutboundServices) -> None:
    out.callbacks.add("cb9", requested_by="integrator")  # type: ignore[union-attr]


@dataclass(frozen=True)
class Case:
    method: str
    template: str
    path: str
    allowed: set[str]
    status: int = 200
    body: Any = None
    data: bytes | None = None
    headers: dict[str, str] | None = None
    setup: Callable[[OutboundServices], None] = nothing

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


CASES = [
    Case("GET", "/campaigns", "/campaigns", ALL_BUT_AGENTS),
    Case("GET", "/campaigns/{name}", "/campaigns/retention", ALL_BUT_AGENTS),
    Case("POST", "/campaigns", "/campaigns", SUPERVISORS, 201, NEW_CAMPAIGN),
    Case("PUT", "/campaigns/{name}", "/campaigns/retention", SUPERVISORS, 200, NEW_CONFIG, setup=api_owned),
    Case("POST", "/campaigns/{name}/start", "/campaigns/retention/start", ALL_BUT_AGENTS),
    Case("POST", "/campaigns/{name}/pause", "/campaigns/retention/pause", ALL_BUT_AGENTS),
    Case("POST", "/campaigns/{name}/stop", "/campaigns/retention/stop", ALL_BUT_AGENTS),
    Case("POST", "/campaigns/{name}/leads", "/campaigns/retention/leads", ALL_BUT_AGENTS, 201, data=CSV.encode(),
         headers={"Content-Type": "text/csv"}),
    Case("GET", "/campaigns/{name}/leads", "/campaigns/retention/leads", ALL_BUT_AGENTS),
    Case("GET", "/dnc", "/dnc", ALL_BUT_AGENTS),
    Case("POST", "/dnc", "/dnc", ALL_BUT_AGENTS, 201, {"number": "06-12345678", "reason": "asked"}),
    Case("DELETE", "/dnc/{number}", "/dnc/+31612345678", SUPERVISORS, 204, setup=listed),
    Case("GET", "/campaigns/{name}/dnc", "/campaigns/retention/dnc", ALL_BUT_AGENTS),
    Case("POST", "/campaigns/{name}/dnc", "/campaigns/retention/dnc", ALL_BUT_AGENTS, 201, {"number": "0612345678"}),
    Case("DELETE", "/campaigns/{name}/dnc/{number}", "/campaigns/retention/dnc/0612345678", SUPERVISORS, 204,
         setup=listed),
    Case("POST", "/agents/{agent_id}/campaign-disposition", "/agents/a1/campaign-disposition", SELF, 201,
         {"call_id": str(CALL_OUT), "disposition": "not_interested"}),
    Case("GET", "/agents/{agent_id}/preview", "/agents/a1/preview", SELF, setup=reserved),
    Case("POST", "/agents/{agent_id}/preview/{lead_id}/dial", "/agents/a1/preview/7/dial", SELF, 201,
         setup=reserved),
    Case("POST", "/agents/{agent_id}/preview/{lead_id}/skip", "/agents/a1/preview/7/skip", SELF,
         body={"reason": "klant is overleden"}, setup=reserved),
    Case("POST", "/callbacks", "/callbacks", CALLBACK_ROLES, 201, {"number": "06 12345678"}),
    Case("GET", "/callbacks/{callback_id}", "/callbacks/cb9", CALLBACK_ROLES, setup=callback_waiting),
    Case("DELETE", "/callbacks/{callback_id}", "/callbacks/cb9", CALLBACK_ROLES, setup=callback_waiting),
]


def test_the_matrix_covers_every_outbound_route():
    declared = {(r.method, r.path) for r in campaigns.routes + callbacks.routes}
    assert all(r.roles for r in campaigns.routes + callbacks.routes)
    assert {(c.method, c.template) for c in CASES} == declared


async def _call(api: Api, case: Case, who: str | None) -> tuple[int, Any, Any]:
    return await api.call(case.method, case.path, who, json=case.body, data=case.data, headers=case.headers)


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_each_role_is_allowed_or_forbidden(case: Case):
    for who in PRINCIPALS:
        out = outbound()
        case.setup(out)
        api = await start_outbound(out)
        try:
            status, body, _ = await _call(api, case, who)
        finally:
            await api.client.close()
        if who in case.allowed:
            assert status == case.status, (who, body)
        else:
            assert status == 403, (who, body)
            assert body["error"]["code"] == "forbidden"


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_no_token_is_401_and_not_wired_is_501(case: Case):
    api = await start_outbound(outbound())
    try:
        status, body, headers = await _call(api, case, None)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    finally:
        await api.client.close()
    api = await start_outbound(None)  # app[OUTBOUND] not set: nothing of it is implemented here
    try:
        status, body, _ = await _call(api, case, "admin")
        assert status == 501 and body["error"]["code"] == "not_implemented", body
    finally:
        await api.client.close()


@pytest.fixture
async def wired():
    out = outbound()
    api = await start_outbound(out)
    try:
        yield api, out
    finally:
        await api.client.close()


# -- campaigns ------------------------------------------------------------------------------------------------------


async def test_list_campaigns_with_live_state_and_pages(wired):
    api, out = wired
    status, body, _ = await api.call("GET", "/campaigns?limit=2", "supervisor")
    assert status == 200
    assert [c["name"] for c in body["items"]] == ["retention", "survey"]
    assert body["items"][0] == {"name": "retention", "description": "Klantbehoud", "enabled": True,
                                "mode": "progressive", "queue": "sales", "state": "stopped", "in_flight": 1,
                                "connected": 2, "dialed": 3, "last_decision": "progressive: 1 ready",
                                "source": "config", "version": None}
    status, body, _ = await api.call("GET", body["next"], "supervisor")
    assert [c["name"] for c in body["items"]] == ["winback"] and body["next"] is None


async def test_one_campaign_has_lead_counts_abandonment_and_dispositions(wired):
    api, out = wired
    status, body, _ = await api.call("GET", "/campaigns/retention", "integrator")
    assert status == 200, body
    assert body["leads"] == {"pending": 5, "dialing": 0, "connected": 0, "callback": 0, "done": 2, "exhausted": 0,
                             "dnc": 0, "cancelled": 0}
    assert body["leads_total"] == 7
    ab = body["abandonment"]
    assert ab["preset"] == "uk_ofcom" and ab["window_seconds"] == 86400
    assert ab["live_answers"] == 40 and ab["abandoned"] == 1 and ab["rate"] == 0.025 and ab["passed"] is True
    assert body["dispositions"]["do_not_call"]["adds_to_dnc"] is True
    assert body["dispositions"]["callback"]["schedules_callback"] is True
    assert body["script"].startswith("Goedendag")


async def test_unknown_campaigns_are_404_everywhere(wired):
    api, _ = wired
    for method, path in [("GET", "/campaigns/nope"), ("POST", "/campaigns/nope/start"),
                         ("GET", "/campaigns/nope/leads"), ("GET", "/campaigns/nope/dnc"),
                         ("DELETE", "/campaigns/nope/dnc/0612345678")]:
        status, body, _ = await api.call(method, path, "admin")
        assert status == 404 and body["error"]["details"] == {"resource": "campaign", "id": "nope"}, path
    status, body, _ = await api.call("POST", "/campaigns/nope/leads", "admin", data=CSV.encode(),
                                     headers={"Content-Type": "text/csv"})
    assert status == 404


async def test_start_pause_stop_and_the_dialers_refusals(wired):
    api, out = wired
    dialer: FakeDialer = out.campaigns  # type: ignore[assignment]
    status, body, _ = await api.call("POST", "/campaigns/retention/start", "supervisor")
    assert status == 200 and body["state"] == "running"
    status, body, _ = await api.call("POST", "/campaigns/retention/pause", "integrator")
    assert status == 200 and body["state"] == "paused"
    status, body, _ = await api.call("POST", "/campaigns/retention/stop", "admin")
    assert status == 200 and body["state"] == "stopped"
    assert dialer.calls == [("start", "retention"), ("pause", "retention"), ("stop", "retention")]
    status, body, _ = await api.call("POST", "/campaigns/survey/start", "admin")
    assert status == 409 and body["error"]["code"] == "rejected" and "preview" in body["error"]["message"]
    status, body, _ = await api.call("POST", "/campaigns/winback/start", "admin")
    assert status == 409 and "disabled" in body["error"]["message"]


async def test_create_and_update_go_to_the_campaign_store(wired):
    api, out = wired
    status, body, _ = await api.call("POST", "/campaigns", "supervisor", json=NEW_CAMPAIGN)
    assert status == 201, body
    assert (body["name"], body["source"], body["version"], body["state"]) == ("upsell", "api", 1, "stopped")
    assert out.campaigns.run_of("upsell").config.caller_id == "+31881234567"  # type: ignore[union-attr]
    status, body, _ = await api.call("POST", "/campaigns", "supervisor", json=NEW_CAMPAIGN)
    assert status == 409
    status, body, _ = await api.call("PUT", "/campaigns/upsell?version=1", "supervisor", json=NEW_CONFIG)
    assert status == 200 and body["version"] == 2
    status, body, _ = await api.call("PUT", "/campaigns/upsell", "supervisor", json=NEW_CONFIG,
                                     headers={"If-Match": '"1"'})
    assert status == 409 and body["error"]["details"]["version"] == 2
    status, body, _ = await api.call("PUT", "/campaigns/upsell", "supervisor", json=NEW_CONFIG,
                                     headers={"If-Match": "nonsense"})
    assert status == 400 and body["error"]["code"] == "invalid_if_match"
    status, body, _ = await api.call("PUT", "/campaigns/retention", "admin", json=NEW_CONFIG)
    assert status == 409 and "config file" in body["error"]["message"]
    status, body, _ = await api.call("PUT", "/campaigns/nope", "admin", json=NEW_CONFIG)
    assert status == 404
    status, body, _ = await api.call("POST", "/campaigns", "admin", json={**NEW_CAMPAIGN, "name": "x", "bogus": 1})
    assert status == 422 and "x" not in out.campaigns.runs  # type: ignore[union-attr]


async def test_leads_are_listed_by_id_with_a_status_filter(wired):
    api, _ = wired
    status, body, _ = await api.call("GET", "/campaigns/retention/leads?limit=3", "supervisor")
    assert status == 200 and [x["id"] for x in body["items"]] == [1, 2, 3]
    assert body["items"][0]["fields"] == {"plan": "basis"} and body["items"][0]["number"] == "+31612340001"
    status, body, _ = await api.call("GET", body["next"], "supervisor")
    assert [x["id"] for x in body["items"]] == [4, 5, 6]
    status, body, _ = await api.call("GET", "/campaigns/retention/leads?status=done", "supervisor")
    assert [x["id"] for x in body["items"]] == [3, 6] and body["next"] is None
    status, body, _ = await api.call("GET", "/campaigns/retention/leads?status=weird", "supervisor")
    assert status == 422
    status, body, _ = await api.call("GET", "/campaigns/retention/leads?cursor=nonsense", "supervisor")
    assert status == 400 and body["error"]["code"] == "invalid_cursor"


# -- CSV upload (real PostgreSQL) -------------------------------------------------------------------------------------


@pytest.fixture
async def db_api(pg_pool):
    out = outbound(leads=PgLeadStore(pg_pool), dnc=PgDncStore(pg_pool),
                   campaigns=FakeDialer({"retention": campaign_config()}))
    api = await start_outbound(out)
    try:
        yield api, out, pg_pool
    finally:
        await api.client.close()


UPLOAD = ("telefoon;naam;plan\n"
          "06-12345678;Anna;basis\n"
          "\n"
          "0612345;Kort;basis\n"
          "06 1234 5678;Dubbel;basis\n"
          "+31 6 8765 4321;Bert;premium\n"
          "0906-1234567;Duur;basis\n")


async def test_csv_upload_imports_and_reports_every_problem_with_its_line(db_api):
    api, out, pool = db_api
    status, body, _ = await api.call("POST", "/campaigns/retention/leads?source=crm-export.csv", "integrator",
                                     data=UPLOAD.encode(), headers={"Content-Type": "text/csv; charset=utf-8"})
    assert status == 201, body
    assert body["campaign"] == "retention" and body["source"] == "crm-export.csv"
    assert body["rows"] == 5 and body["imported"] == 2 and body["invalid"] == 2 and body["duplicates_in_file"] == 1
    assert body["blank_lines"] == 1 and body["phone_column"] == "telefoon" and body["delimiter"] == ";"
    assert body["bytes"] == len(UPLOAD.encode()) and re.fullmatch(r"[0-9a-f]{64}", body["sha256"])
    assert [(p["line"], p["kind"]) for p in body["problems"]] == [(4, "invalid"), (5, "duplicate_in_file"),
                                                                   (7, "invalid")]
    assert "also on line 2" in body["problems"][1]["reason"] and "premium" in body["problems"][2]["reason"]
    assert body["problems_truncated"] is False
    assert await lead_store.lead_counts(pool, "retention") == {"pending": 2}

    status, listed, _ = await api.call("GET", "/campaigns/retention/leads?limit=1", "supervisor")
    assert [x["number"] for x in listed["items"]] == ["+31612345678"] and listed["items"][0]["name"] == "Anna"
    assert listed["items"][0]["fields"] == {"plan": "basis"} and listed["items"][0]["source_line"] == 2
    status, listed, _ = await api.call("GET", listed["next"], "supervisor")
    assert [x["number"] for x in listed["items"]] == ["+31687654321"] and listed["next"] is None

    # The same file again: nothing new, every row reported as already in the campaign.
    status, again, _ = await api.call("POST", "/campaigns/retention/leads?problems=1", "integrator",
                                      data=UPLOAD.encode(), headers={"Content-Type": "text/csv"})
    assert status == 201 and again["imported"] == 0 and again["already_in_campaign"] == 2
    assert len(again["problems"]) == 1 and again["problems_truncated"] is True
    assert again["source"] == "api-upload"


async def test_multipart_upload_takes_the_file_field_and_its_name(db_api):
    api, _, pool = db_api
    form = aiohttp.FormData()
    form.add_field("comment", "ignored")
    form.add_field("file", b"phone,name\n0612345678,Anna\n", filename="leads.csv", content_type="text/csv")
    status, body, _ = await api.call("POST", "/campaigns/retention/leads", "admin", data=form)
    assert status == 201, body
    assert body["source"] == "leads.csv" and body["imported"] == 1
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("comment", "no file here")
    status, body, _ = await api.call("POST", "/campaigns/retention/leads", "admin", data=form)
    assert status == 422 and body["error"]["code"] == "invalid_file"
    status, body, _ = await api.call("POST", "/campaigns/retention/leads", "admin", data={"phone": "0612345678"})
    assert status == 415  # a url-encoded form is no file


async def test_upload_limits_types_and_unreadable_files_import_nothing(db_api):
    api, out, pool = db_api
    out.max_upload_bytes = 1000
    big = ("phone\n" + "0612345678\n" * 200).encode()
    status, body, _ = await api.call("POST", "/campaigns/retention/leads", "admin", data=big,
                                     headers={"Content-Type": "text/csv"})
    assert status == 413 and body["error"]["code"] == "payload_too_large" and body["error"]["details"] == {
        "limit": 1000}
    status, body, _ = await api.call("POST", "/campaigns/retention/leads", "admin", json={"phone": "0612345678"})
    assert status == 415 and body["error"]["code"] == "unsupported_media_type"
    status, body, _ = await api.call("POST", "/campaigns/retention/leads", "admin", data=b"",
                                     headers={"Content-Type": "text/csv"})
    assert status == 422 and body["error"]["code"] == "invalid_file"
    status, body, _ = await api.call("POST", "/campaigns/retention/leads", "admin", data=b"naam\nAnna\n",
                                     headers={"Content-Type": "text/csv"})
    assert status == 422 and "no phone column" in body["error"]["message"]
    latin = "phone;name\n0612345678;Jos\u00e9\n0612345679;Ren\u00e9e\n".encode("cp1252")
    status, body, _ = await api.call("POST", "/campaigns/retention/leads", "admin", data=latin,
                                     headers={"Content-Type": "text/csv"})
    assert status == 422 and "line 2" in body["error"]["message"] and "nothing was imported" in body["error"]["message"]
    assert await lead_store.lead_counts(pool, "retention") == {}
    status, body, _ = await api.call("POST", "/campaigns/retention/leads?encoding=cp1252", "admin", data=latin,
                                     headers={"Content-Type": "text/csv"})
    assert status == 201 and body["imported"] == 2
    status, body, _ = await api.call("POST", "/campaigns/retention/leads?encoding=klingon", "admin", data=latin,
                                     headers={"Content-Type": "text/csv"})
    assert status == 422 and body["error"]["code"] == "invalid_file"


async def test_upload_with_an_idempotency_key_imports_once(db_api):
    api, _, pool = db_api
    headers = {"Content-Type": "text/csv", "Idempotency-Key": "upload-1"}
    status, first, h1 = await api.call("POST", "/campaigns/retention/leads", "integrator", data=UPLOAD.encode(),
                                       headers=headers)
    status2, second, h2 = await api.call("POST", "/campaigns/retention/leads", "integrator", data=UPLOAD.encode(),
                                         headers=headers)
    assert status == status2 == 201
    assert second == first and h2["Idempotent-Replayed"] == "true"
    rows = await pool.fetchval("SELECT count(*) FROM lead_imports")
    assert rows == 1


# -- do-not-call (real PostgreSQL) ---------------------------------------------------------------------------------------


async def test_global_and_campaign_dnc_lists(db_api):
    api, _, pool = db_api
    status, body, _ = await api.call("POST", "/dnc", "integrator",
                                     json={"number": "06-12345678", "reason": "asked on the phone"})
    assert status == 201, body
    assert body["created"] is True and body["entry"]["number"] == "+31612345678"
    assert body["entry"]["campaign"] is None and body["entry"]["source"] == "api:integrator"
    status, body, _ = await api.call("POST", "/dnc", "integrator", json={"number": "+31 6 12345678"})
    assert status == 200 and body["created"] is False
    status, body, _ = await api.call("POST", "/campaigns/retention/dnc", "supervisor",
                                     json={"number": "0611111111", "expires_at": "2030-01-01T00:00:00+01:00"})
    assert status == 201 and body["entry"]["campaign"] == "retention" and body["entry"]["expires_at"]

    status, body, _ = await api.call("GET", "/dnc", "supervisor")
    assert [e["number"] for e in body["items"]] == ["+31612345678"]
    status, body, _ = await api.call("GET", "/campaigns/retention/dnc", "supervisor")
    assert [e["number"] for e in body["items"]] == ["+31611111111"]
    status, body, _ = await api.call("GET", "/dnc?number=%2B31612345678", "supervisor")
    assert len(body["items"]) == 1
    status, body, _ = await api.call("GET", "/dnc?number=+31612345678", "supervisor")  # an unencoded +
    assert status == 200 and len(body["items"]) == 1
    status, body, _ = await api.call("GET", "/dnc?number=0699999999", "supervisor")
    assert body["items"] == []

    status, body, _ = await api.call("POST", "/dnc", "integrator", json={"number": "12"})
    assert status == 422 and body["error"]["code"] == "invalid_number"
    assert body["error"]["details"][0]["loc"] == ["body", "number"]
    status, body, _ = await api.call("POST", "/dnc", "integrator", json={"number": "+32 470 12 34 56",
                                                                          "region": "xx"})
    assert status == 422 and body["error"]["code"] == "validation_error"

    status, _, _ = await api.call("DELETE", "/dnc/0612345678?reason=mistake", "supervisor")
    assert status == 204
    status, body, _ = await api.call("DELETE", "/dnc/0612345678", "supervisor")
    assert status == 404 and "global" in body["error"]["message"]
    row = await pool.fetchrow("SELECT removed_at, removed_reason FROM dnc_entries WHERE campaign IS NULL")
    assert row["removed_at"] is not None and row["removed_reason"] == "mistake (api:supervisor)"
    status, _, _ = await api.call("DELETE", "/campaigns/retention/dnc/+31611111111", "admin")
    assert status == 204


async def test_dnc_pages(db_api):
    api, _, pool = db_api
    for i in range(5):
        await api.call("POST", "/dnc", "admin", json={"number": f"061234567{i}"})
    status, body, _ = await api.call("GET", "/dnc?limit=2", "admin")
    seen = [e["number"] for e in body["items"]]
    while body["next"]:
        status, body, _ = await api.call("GET", body["next"], "admin")
        seen += [e["number"] for e in body["items"]]
    assert seen == [f"+3161234567{i}" for i in range(5)]


async def test_global_dnc_needs_a_country_code_without_a_region(pg_pool):
    out = outbound(dnc=PgDncStore(pg_pool), default_region=None,
                   callback_settings=outbound().callback_settings.model_copy(update={"default_region": None}))
    api = await start_outbound(out)
    try:
        status, body, _ = await api.call("POST", "/dnc", "admin", json={"number": "0612345678"})
        assert status == 422 and "country code" in body["error"]["message"]
        status, body, _ = await api.call("POST", "/dnc", "admin", json={"number": "0612345678", "region": "nl"})
        assert status == 201 and body["entry"]["number"] == "+31612345678"
        status, body, _ = await api.call("POST", "/dnc", "admin", json={"number": "+44 20 7946 0018"})
        assert status == 201 and body["entry"]["number"] == "+442079460018"
    finally:
        await api.client.close()


# -- dispositions (real PostgreSQL) ------------------------------------------------------------------------------------


async def _attempt(pool, *, agent: str = "a1", number: str = "0612345678") -> tuple[uuid.UUID, int]:
    cfg = campaign_config()
    lead = await lead_store.add_lead(pool, "retention", cfg, number, now=NOW - timedelta(hours=1))
    assert lead is not None
    call_id = uuid.uuid4()
    await lead_store.record_attempt(pool, "retention", cfg, Attempt(
        number=lead.number, started_at=NOW - timedelta(minutes=5), outcome="human", lead_id=lead.id,
        attempt_id=call_id, call_id=call_id, agent_id=agent, ended_at=NOW - timedelta(minutes=1)), now=NOW)
    return call_id, lead.id


@pytest.fixture
async def disp_api(pg_pool):
    clocks = Clocks()
    dialer = FakeDialer({"retention": campaign_config()})
    out = outbound(clocks, campaigns=dialer, dnc=PgDncStore(pg_pool),
                   dispositions=PgDispositionSink(pg_pool, dialer, clock=lambda: clocks.now))
    api = await start_outbound(out)
    try:
        yield api, out, pg_pool
    finally:
        await api.client.close()


async def test_campaign_dispositions_move_the_lead_on(disp_api):
    api, out, pool = disp_api
    call_id, lead_id = await _attempt(pool)
    status, body, _ = await api.call("POST", "/agents/a1/campaign-disposition", "agent",
                                     json={"call_id": str(call_id), "disposition": "not_interested",
                                           "notes": "heeft al een aanbieding"})
    assert status == 201, body
    assert body["campaign"] == "retention" and body["lead_id"] == lead_id and body["lead_status"] == "done"
    assert (await lead_store.get_lead(pool, lead_id)).disposition == "not_interested"
    event = api.world.sink.events[-1]
    assert event.call_id == call_id and event.type == "disposition"
    assert event.data["campaign"] == "retention" and event.data["by"] == "agent"

    call_id, lead_id = await _attempt(pool, number="0687654321")
    status, body, _ = await api.call("POST", "/agents/a1/campaign-disposition", "supervisor",
                                     json={"call_id": str(call_id), "disposition": "do_not_call"})
    assert status == 201 and body["lead_status"] == "dnc"
    status, listed, _ = await api.call("GET", "/dnc", "supervisor")
    assert [e["number"] for e in listed["items"]] == ["+31687654321"]
    assert listed["items"][0]["source"] == "disposition:a1"

    call_id, lead_id = await _attempt(pool, number="0611112222")
    payload = {"call_id": str(call_id), "disposition": "callback"}
    status, body, _ = await api.call("POST", "/agents/a1/campaign-disposition", "agent", json=payload)
    assert status == 422 and body["error"]["code"] == "invalid" and "callback_at" in body["error"]["message"]
    payload["callback_at"] = "2026-03-10T23:30:00"  # 23:30 on the callee's clock: outside 08:00-21:00
    status, body, _ = await api.call("POST", "/agents/a1/campaign-disposition", "agent", json=payload)
    assert status == 422 and "calling windows" in body["error"]["message"]
    payload["callback_at"] = "2026-03-11T14:30:00"
    status, body, _ = await api.call("POST", "/agents/a1/campaign-disposition", "agent", json=payload)
    assert status == 201 and body["lead_status"] == "callback" and body["callback_id"] is not None
    assert body["next_attempt_at"] == "2026-03-11T13:30:00Z"


async def test_campaign_disposition_refusals(disp_api):
    api, out, pool = disp_api
    call_id, _ = await _attempt(pool)
    status, body, _ = await api.call("POST", "/agents/a1/campaign-disposition", "agent",
                                     json={"call_id": str(call_id), "disposition": "sold_a_car"})
    assert status == 422 and "sold_a_car" in body["error"]["message"]
    assert "not_interested" in body["error"]["details"]["dispositions"]
    status, body, _ = await api.call("POST", "/agents/a2/campaign-disposition", "supervisor",
                                     json={"call_id": str(call_id), "disposition": "not_interested"})
    assert status == 409 and "taken by agent 'a1'" in body["error"]["message"]
    status, body, _ = await api.call("POST", "/agents/a1/campaign-disposition", "agent",
                                     json={"call_id": str(CALL1), "disposition": "not_interested"})
    assert status == 404 and body["error"]["code"] == "not_found"
    out.campaigns.runs["retention"].attempts[CALL1] = object()  # type: ignore[union-attr]
    status, body, _ = await api.call("POST", "/agents/a1/campaign-disposition", "agent",
                                     json={"call_id": str(CALL1), "disposition": "not_interested"})
    assert status == 409 and "not over yet" in body["error"]["message"]
    status, body, _ = await api.call("POST", "/agents/a2/campaign-disposition", "agent",
                                     json={"call_id": str(call_id), "disposition": "not_interested"})
    assert status == 403
    status, body, _ = await api.call("POST", "/agents/ghost/campaign-disposition", "admin",
                                     json={"call_id": str(call_id), "disposition": "not_interested"})
    assert status == 404 and body["error"]["details"]["resource"] == "agent"


async def test_disposition_errors_of_a_fake_sink_map_to_http(wired):
    api, out = wired
    for exc, status, code in ((NotFound("no call"), 404, "not_found"), (Rejected("busy"), 409, "rejected"),
                              (Invalid("no such code"), 422, "invalid")):
        out.dispositions.fail = exc  # type: ignore[union-attr]
        got, body, _ = await api.call("POST", "/agents/a1/campaign-disposition", "admin",
                                      json={"call_id": str(CALL_OUT), "disposition": "x"})
        assert (got, body["error"]["code"]) == (status, code)


# -- preview ---------------------------------------------------------------------------------------------------------------


async def test_preview_shows_the_reserved_lead_with_script_and_dispositions(wired):
    api, out = wired
    status, body, _ = await api.call("GET", "/agents/a1/preview", "agent")
    assert status == 200 and body == {"agent_id": "a1", "campaign": None, "lead": None, "reserved_until": None,
                                      "callback": None, "script": "", "dispositions": {}}
    out.preview.reserve("a1", 7)  # type: ignore[union-attr]
    status, body, _ = await api.call("GET", "/agents/a1/preview", "agent")
    assert body["campaign"] == "survey" and body["lead"]["id"] == 7 and body["lead"]["name"] == "Klant 7"
    assert body["reserved_until"] == "2026-03-10T10:01:00Z"
    assert body["script"].startswith("Goedendag") and "not_interested" in body["dispositions"]
    assert body["callback"] is None  # a fresh lead
    status, body, _ = await api.call("GET", "/agents/a2/preview", "agent")
    assert status == 403


async def test_a_previewed_scheduled_callback_says_for_whom_when_and_why(wired):
    from dataclasses import replace

    from callcore.api.outbound_services import PreviewCallback

    api, out = wired
    out.preview.reserve("a1", 7)  # type: ignore[union-attr]
    offer = out.preview.offers["a1"]  # type: ignore[union-attr]
    due = datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc)
    out.preview.offers["a1"] = replace(offer, callback=PreviewCallback(  # type: ignore[union-attr]
        42, "a1", due, "2026-03-10 10:00", "Europe/Amsterdam", "wants the fibre offer explained"))
    status, body, _ = await api.call("GET", "/agents/a1/preview", "agent")
    assert status == 200 and body["lead"]["id"] == 7
    assert body["callback"] == {"id": 42, "owner_agent": "a1", "due_at": "2026-03-10T09:00:00Z",
                                "due_local": "2026-03-10 10:00", "timezone": "Europe/Amsterdam",
                                "note": "wants the fibre offer explained"}


async def test_preview_dial_and_skip(wired):
    api, out = wired
    preview = out.preview
    status, body, _ = await api.call("POST", "/agents/a1/preview/7/dial", "agent")
    assert status == 404
    preview.reserve("a1", 7)  # type: ignore[union-attr]
    preview.refuse = "on the global do-not-call list"  # type: ignore[union-attr]
    status, body, _ = await api.call("POST", "/agents/a1/preview/7/dial", "agent")
    assert status == 409 and body["error"]["message"] == "on the global do-not-call list"
    preview.refuse = None  # type: ignore[union-attr]
    status, body, _ = await api.call("POST", "/agents/a1/preview/7/dial", "agent")
    assert status == 201 and body == {"agent_id": "a1", "lead_id": 7, "action": "dial", "call_id": str(CALL_OUT)}
    preview.reserve("a1", 8)  # type: ignore[union-attr]
    status, body, _ = await api.call("POST", "/agents/a1/preview/8/skip", "agent", json={})
    assert status == 200 and body["action"] == "skip" and body["call_id"] is None
    assert preview.skipped == [("a1", 8, "skipped")]  # type: ignore[union-attr]
    status, body, _ = await api.call("POST", "/agents/a1/preview/0/dial", "agent")
    assert status == 422
    status, body, _ = await api.call("GET", "/agents/ghost/preview", "admin")
    assert status == 404


# -- robustness -------------------------------------------------------------------------------------------------------------

GARBAGE_BODIES: list[Any] = [None, {}, [], "text", 0, 1e308, True, {"": None}, {"number": None},
                             {"number": "1" * 1000}, {"number": "+31612345678", "window": {"from": "yesterday"}},
                             {"call_id": "x", "disposition": "\u0000"}, {"context": {"page": "\u0000"}},
                             {"number": "0612345678", "expires_at": "2020-01-01"}, {"reason": ["x"]}]
GARBAGE_PATH_VALUES = ["retention", "%00", "..", "x" * 150, "🙂", "-1", " ", "+31612345678", "0", "cb9"]


def _concrete(template: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", value.replace("%", "%25") if value != "%00" else value, template)


async def test_garbage_never_gets_a_5xx_with_the_services_wired():
    out = outbound()
    out.preview.reserve("a1", 7)  # type: ignore[union-attr]
    api = await start_outbound(out)
    try:
        for route in campaigns.routes + callbacks.routes:
            for value, payload in itertools.product(GARBAGE_PATH_VALUES, GARBAGE_BODIES):
                status, body, _ = await api.call(route.method, _concrete(route.path, value), json=payload)
                assert status < 500 or status == 501, (route.method, route.path, value, payload, status, body)
            for raw, ctype in ((b"{", "application/json"), (b"\xff\xfe", "text/csv"), (b"--x\r\n", "multipart/form-data"),
                               (b"--x\r\nbroken", "multipart/form-data; boundary=x")):
                status, body, _ = await api.call(route.method, _concrete(route.path, "retention"), data=raw,
                                                 headers={"Content-Type": ctype})
                assert status < 500 or status == 501, (route.method, route.path, raw, status, body)
    finally:
        await api.client.close()


def test_the_dialer_service_fits_campaign_control():
    from callcore.dialer.service import CampaignRun, DialerService

    for name in ("start", "pause", "stop"):
        assert inspect.iscoroutinefunction(getattr(DialerService, name))
    assert callable(DialerService.run_of) and callable(DialerService.status)
    assert {"name", "config", "state", "attempts"} <= {f.name for f in dataclasses.fields(CampaignRun)}
