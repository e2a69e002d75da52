"""POST /callbacks ("call me now") and its abuse protection: number normalisation and the allow-list, the
do-not-call check, rate limits per client, per visitor and per number (also across a restart, in PostgreSQL),
the pending cap, the promised time; GET and DELETE of a callback. The role matrix is in test_api_campaigns.py."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from callcore.api.callbacks import promise
from callcore.api.callbacks_config import CallbacksSettings, callback_issues
from callcore.api.outbound_services import PgCallbackQuota, PgDncStore
from callcore.leads import dnc
from tests.unit.api.outboundfakes import NOW, Clocks, FakeScheduler, callback_settings, outbound, start_outbound

UTC = timezone.utc


@pytest.fixture
async def cb():
    clocks = Clocks()
    out = outbound(clocks)
    api = await start_outbound(out)
    try:
        yield api, out, clocks
    finally:
        await api.client.close()


async def ask(api, body: dict[str, Any] | None = None, who: str = "integrator", **headers: str):
    return await api.call("POST", "/callbacks", who, json=body or {"number": "06 12345678"},
                          headers=headers or None)


# -- the happy path ---------------------------------------------------------------------------------------------------


async def test_a_request_gets_an_id_a_place_and_a_promised_time(cb):
    api, out, _ = cb
    sched: FakeScheduler = out.callbacks  # type: ignore[assignment]
    status, body, _ = await ask(api, {"number": "06-12345678",
                                      "context": {"page": "https://telco.nl/glasvezel", "product": "glasvezel 1G",
                                                  "note": ""}})
    assert status == 201, body
    # The fake estimates 5 minutes for position 1; the margin is 120 s: 10:07 (rounded up to the minute).
    assert body == {"id": "cb1", "status": "waiting", "queue": "sales", "number": "+31612345678", "position": 1,
                    "promised_at": "2026-03-10T10:07:00Z", "not_before": None, "not_after": None}
    assert sched.requests == [{"number": "+31612345678", "queue": "sales", "requested_by": "integrator",
                               "context": {"page": "https://telco.nl/glasvezel", "product": "glasvezel 1G"},
                               "not_before": None, "not_after": None}]
    assert out.quota.rows == [("+31612345678", "cb1", NOW)]  # type: ignore[union-attr]
    status, body, _ = await ask(api, {"number": "+31 20 794 6000", "queue": "billing"})
    assert status == 201 and body["position"] == 2 and body["queue"] == "billing"
    assert body["promised_at"] == "2026-03-10T10:12:00Z"


async def test_the_preferred_window_bounds_the_promise(cb):
    api, out, _ = cb
    sched: FakeScheduler = out.callbacks  # type: ignore[assignment]
    window = {"from": "2026-03-10T12:00:00+01:00", "to": "2026-03-10T13:00:00+01:00"}  # 11:00-12:00 UTC
    status, body, _ = await ask(api, {"number": "0612345678", "window": window})
    assert status == 201, body
    assert body["not_before"] == "2026-03-10T11:00:00Z" and body["not_after"] == "2026-03-10T12:00:00Z"
    assert body["promised_at"] == "2026-03-10T11:07:00Z"
    assert sched.requests[-1]["not_before"] == datetime(2026, 3, 10, 11, 0, tzinfo=UTC)
    # A window that is already open starts now.
    status, body, _ = await ask(api, {"number": "0612345679",
                                      "window": {"from": "2026-03-10T09:00:00Z", "to": "2026-03-10T10:30:00Z"}})
    assert status == 201 and body["not_before"] is None and body["promised_at"] == "2026-03-10T10:12:00Z"
    # The margin would overshoot the end: the promise is the end itself.
    sched.estimate = timedelta(minutes=29)
    status, body, _ = await ask(api, {"number": "0612345670",
                                      "window": {"to": "2026-03-10T10:30:00Z"}})
    assert status == 201 and body["promised_at"] == "2026-03-10T10:30:00Z"
    # The estimate itself is after the end: refused, and the ticket is given back.
    sched.estimate = timedelta(minutes=45)
    status, body, _ = await ask(api, {"number": "0612345671", "window": {"to": "2026-03-10T10:30:00Z"}})
    assert status == 409 and body["error"]["code"] == "window_unavailable"
    assert sched.cancelled == ["cb4"]


def test_promise_rounds_up_to_the_minute_inside_the_window():
    t = datetime(2026, 3, 10, 10, 0, 30, tzinfo=UTC)
    assert promise(t, 120, None, None) == datetime(2026, 3, 10, 10, 3, tzinfo=UTC)
    assert promise(t.replace(second=0), 120, None, None) == datetime(2026, 3, 10, 10, 2, tzinfo=UTC)
    assert promise(t, 0, t + timedelta(hours=1), None) == t + timedelta(hours=1)
    assert promise(t, 600, None, t + timedelta(minutes=5)) == t + timedelta(minutes=5)
    assert promise(t, 0, None, t - timedelta(seconds=1)) is None


# -- validation -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body,where", [
    ({"number": "06 12345678", "window": {"from": "2026-03-10T12:00:00Z", "to": "2026-03-10T11:00:00Z"}}, "window"),
    ({"number": "06 12345678", "window": {"from": "2026-03-10T12:00:00"}}, "from"),  # no offset
    ({"number": "06 12345678", "context": {"page": "x" * 501}}, "page"),
    ({"number": "06 12345678", "context": {"note": "line\nbreak"}}, "note"),
    ({"number": "06 12345678", "context": {"referrer": "x"}}, "referrer"),
    ({"number": "06 12345678", "colour": "blue"}, "colour"),
    ({"number": "tel:0612345678"}, "number"),
    ({"number": "06 12345678", "requester": ""}, "requester"),
    ({"number": "06 12345678", "queue": "../x"}, "queue"),
])
async def test_bodies_are_strict(cb, body, where):
    api, out, _ = cb
    status, got, _ = await ask(api, body)
    assert status == 422 and got["error"]["code"] == "validation_error", got
    assert where in got["error"]["message"]
    assert out.callbacks.requests == []  # type: ignore[union-attr]


async def test_windows_in_the_past_or_too_far_ahead(cb):
    api, _, _ = cb
    status, body, _ = await ask(api, {"number": "0612345678", "window": {"to": "2026-03-10T09:59:00Z"}})
    assert status == 422 and "over already" in body["error"]["message"]
    status, body, _ = await ask(api, {"number": "0612345678", "window": {"from": "2026-03-18T10:00:00Z"}})
    assert status == 422 and "7 days ahead" in body["error"]["message"]


async def test_queues(cb):
    api, out, _ = cb
    status, body, _ = await ask(api, {"number": "0612345678", "queue": "retention"})
    assert status == 422 and body["error"]["code"] == "queue_not_allowed"
    out.callback_settings = callback_settings(allowed_queues=["sales", "ghosts"])
    status, body, _ = await ask(api, {"number": "0612345678", "queue": "ghosts"})
    assert status == 422 and body["error"]["code"] == "unknown_queue"  # not in the ACD
    out.callback_settings = callback_settings(queue=None, allowed_queues=[])
    status, body, _ = await ask(api, {"number": "0612345678"})
    assert status == 422 and "callbacks.queue" in body["error"]["message"]


# -- toll fraud: numbers and the allow-list -------------------------------------------------------------------------------


@pytest.mark.parametrize("number,status,code", [
    ("0612345", 422, "invalid_number"),  # too short
    ("06123456789012", 422, "invalid_number"),  # too long
    ("0900-1234567", 403, "destination_not_allowed"),  # premium rate
    ("0909-1234567", 403, "destination_not_allowed"),  # premium rate (entertainment)
    ("+32 470 12 34 56", 403, "destination_not_allowed"),  # Belgium: not on the allow-list
    ("+882 1234 5678", 422, "invalid_number"),  # international networks: not a valid number
    ("0800-0123456", 403, "destination_not_allowed"),  # toll free is not among the allowed types
    ("+31 6 1234 5678", 201, None),
    ("0031612345678", 201, None),
])
async def test_numbers_must_be_valid_and_allowed(cb, number, status, code):
    api, out, _ = cb
    got, body, _ = await ask(api, {"number": number})
    assert got == status, body
    if code is not None:
        assert body["error"]["code"] == code
        assert out.callbacks.requests == []  # type: ignore[union-attr]


async def test_allow_list_by_country_and_the_secure_default(cb):
    api, out, _ = cb
    out.callback_settings = callback_settings(allowed_prefixes=[], allowed_countries=["BE"])
    status, body, _ = await ask(api, {"number": "+32 470 12 34 56"})
    assert status == 201, body
    status, body, _ = await ask(api, {"number": "0612345678"})
    assert status == 403 and "BE" in body["error"]["message"]
    out.callback_settings = callback_settings(allowed_prefixes=[], allowed_countries=[])  # default region only
    status, body, _ = await ask(api, {"number": "0612345678"})
    assert status == 201
    status, body, _ = await ask(api, {"number": "+32 470 12 34 57"})
    assert status == 403
    out.callback_settings = callback_settings(allowed_prefixes=[], default_region=None)  # nothing is allowed
    status, body, _ = await ask(api, {"number": "+31 6 12345677"})
    assert status == 403 and "configure callbacks.allowed_prefixes" in body["error"]["message"]
    status, body, _ = await ask(api, {"number": "06 12345677"})
    assert status == 422 and "country code" in body["error"]["message"]
    out.callback_settings = callback_settings(allowed_prefixes=["+3120"])  # Amsterdam fixed lines only
    status, body, _ = await ask(api, {"number": "020 794 6000"})
    assert status == 201
    status, body, _ = await ask(api, {"number": "010 794 6000"})
    assert status == 403


async def test_numbers_on_the_global_dnc_list_are_refused(pg_pool):
    out = outbound(dnc=PgDncStore(pg_pool))
    await dnc.add(pg_pool, "0612345678", region="NL", reason="asked")
    await dnc.add(pg_pool, "0687654321", region="NL", campaign="retention")  # a campaign's list: not for callbacks
    api = await start_outbound(out)
    try:
        status, body, _ = await ask(api, {"number": "+31612345678"})
        assert status == 403 and body["error"]["code"] == "number_on_dnc"
        assert out.callbacks.requests == []  # type: ignore[union-attr]
        status, body, _ = await ask(api, {"number": "0687654321"})
        assert status == 201
        # A refusal does not use up the number's daily allowance.
        await dnc.remove(pg_pool, "0612345678", region="NL")
        for _ in range(3):
            status, body, _ = await ask(api, {"number": "0612345678"})
            assert status == 201
    finally:
        await api.client.close()


# -- harassment: rate limits ---------------------------------------------------------------------------------------------------


async def test_per_number_limit_slides_over_24_hours(cb):
    api, out, clocks = cb
    for i in range(3):
        status, body, _ = await ask(api, {"number": "0612345678"})
        assert status == 201, body
        clocks.advance(3600)
    status, body, headers = await ask(api, {"number": "+31612345678"})
    assert status == 429 and body["error"]["code"] == "rate_limited"
    assert body["error"]["details"]["scope"] == "number" and body["error"]["details"]["limit"] == 3
    assert headers["Retry-After"] == str(21 * 3600)  # the first one leaves the window 24 h after it came
    status, body, _ = await ask(api, {"number": "0612345679"})  # another number is fine
    assert status == 201
    clocks.advance(21 * 3600)
    status, body, _ = await ask(api, {"number": "0612345678"})
    assert status == 201


async def test_refused_requests_do_not_use_up_a_numbers_allowance(cb):
    api, out, _ = cb
    sched: FakeScheduler = out.callbacks  # type: ignore[assignment]
    sched.refuse = "nobody can call back now: no agent is logged in to sales"
    for _ in range(5):
        status, body, _ = await ask(api, {"number": "0612345678"})
        assert status == 409 and body["error"]["message"].startswith("nobody can call back")
    sched.refuse = None
    for _ in range(3):
        status, body, _ = await ask(api, {"number": "0612345678"})
        assert status == 201


async def test_per_client_and_per_requester_limits(cb):
    api, out, clocks = cb
    out.callback_settings = callback_settings(max_per_client_per_hour=4, max_per_requester_per_hour=2)
    for i in range(2):
        status, _, _ = await ask(api, {"number": f"061234567{i}", "requester": "203.0.113.7"})
        assert status == 201
    status, body, headers = await ask(api, {"number": "0612345672", "requester": "203.0.113.7"})
    assert status == 429 and body["error"]["details"]["scope"] == "requester" and headers["Retry-After"] == "3600"
    status, _, _ = await ask(api, {"number": "0612345673", "requester": "198.51.100.1"})
    assert status == 201
    # Four requests from this token within the hour (refused ones count too): the fifth is refused, whoever.
    status, body, _ = await ask(api, {"number": "0612345674"})
    assert status == 429 and body["error"]["details"]["scope"] == "client"
    status, _, _ = await ask(api, {"number": "0612345674"}, who="supervisor")  # another token
    assert status == 201
    clocks.advance(3601)
    status, _, _ = await ask(api, {"number": "0612345674"})
    assert status == 201


async def test_the_daily_limit_survives_a_restart(pg_pool):
    clocks = Clocks(now=datetime.now(UTC))  # PostgreSQL keeps real times
    for attempt in range(2):  # two processes one after the other, sharing only the database
        out = outbound(clocks, quota=PgCallbackQuota(pg_pool))
        api = await start_outbound(out)
        try:
            if attempt == 0:
                for _ in range(3):
                    status, body, _ = await ask(api, {"number": "0612345678"})
                    assert status == 201, body
            else:
                status, body, headers = await ask(api, {"number": "0612345678"})
                assert status == 429 and body["error"]["details"]["scope"] == "number"
                assert 86_000 < int(headers["Retry-After"]) <= 86_400
                status, body, _ = await ask(api, {"number": "0612345679"})
                assert status == 201
        finally:
            await api.client.close()
    rows = await pg_pool.fetch("SELECT owner, key FROM idempotency_keys")
    assert len(rows) == 4 and not any("612345678" in r["owner"] for r in rows)  # no numbers in the table
    quota = PgCallbackQuota(pg_pool)
    assert len(await quota.recent("+31612345678", clocks.now - timedelta(days=1))) == 3
    assert await quota.recent("+31612345678", clocks.now + timedelta(seconds=1)) == []


async def test_a_database_that_is_away_refuses_rather_than_skips_the_checks(cb):
    api, out, _ = cb

    class Down:
        async def recent(self, number, since):
            raise ConnectionRefusedError("away")

        async def check(self, *a, **kw):
            raise ConnectionRefusedError("away")

    out.quota = Down()  # type: ignore[assignment]
    status, body, _ = await ask(api)
    assert status == 503 and body["error"]["code"] == "service_unavailable"
    out.quota = None
    out.dnc = Down()  # type: ignore[assignment]
    status, body, _ = await ask(api)
    assert status == 503 and "do-not-call" in body["error"]["message"]
    assert out.callbacks.requests == []  # type: ignore[union-attr]


async def test_pending_cap_and_the_off_switch(cb):
    api, out, _ = cb
    out.callback_settings = callback_settings(max_pending=2)
    for i in range(2):
        status, _, _ = await ask(api, {"number": f"061234567{i}"})
        assert status == 201
    status, body, headers = await ask(api, {"number": "0612345672"})
    assert status == 503 and body["error"]["code"] == "callbacks_busy" and headers["Retry-After"] == "60"
    out.callback_settings = callback_settings(enabled=False)
    status, body, _ = await ask(api, {"number": "0612345673"})
    assert status == 503 and body["error"]["code"] == "callbacks_disabled"


async def test_an_idempotent_retry_does_not_ask_twice(cb):
    api, out, _ = cb
    first = await ask(api, {"number": "0612345678"}, **{"Idempotency-Key": "k-1"})
    again = await ask(api, {"number": "0612345678"}, **{"Idempotency-Key": "k-1"})
    assert first[0] == again[0] == 201 and first[1] == again[1]
    assert again[2]["Idempotent-Replayed"] == "true"
    assert len(out.callbacks.requests) == 1  # type: ignore[union-attr]
    assert len(out.quota.rows) == 1  # type: ignore[union-attr]


# -- status and cancel -------------------------------------------------------------------------------------------------------


async def test_status_and_cancel_of_ones_own_callbacks(cb):
    api, out, _ = cb
    status, created, _ = await ask(api)
    cid = created["id"]
    status, body, _ = await api.call("GET", f"/callbacks/{cid}", "integrator")
    assert status == 200 and body == {"id": cid, "status": "waiting", "queue": "sales", "number": "+31612345678",
                                      "position": 1, "estimated_at": "2026-03-10T10:05:00Z",
                                      "created_at": "2026-03-10T10:00:00Z", "attempts": 0}
    out.callbacks.add("theirs", requested_by="other-site")  # type: ignore[union-attr]
    for method in ("GET", "DELETE"):
        status, body, _ = await api.call(method, "/callbacks/theirs", "integrator")
        assert status == 404, method  # another integrator's callback: as if it did not exist
    status, body, _ = await api.call("GET", "/callbacks/theirs", "supervisor")
    assert status == 200
    status, body, _ = await api.call("DELETE", f"/callbacks/{cid}", "integrator")
    assert status == 200 and body["status"] == "cancelled" and body["position"] is None
    status, body, _ = await api.call("DELETE", f"/callbacks/{cid}", "integrator")
    assert status == 409 and "too late" in body["error"]["message"]
    status, body, _ = await api.call("GET", "/callbacks/nope", "admin")
    assert status == 404
    status, body, _ = await api.call("GET", "/callbacks/bad%20id", "admin")
    assert status == 422


# -- the config section -----------------------------------------------------------------------------------------------------


def test_settings_are_validated():
    s = CallbacksSettings.model_validate({"default_region": "nl", "allowed_prefixes": ["+31 20"],
                                         "allowed_countries": ["be"]})
    assert s.default_region == "NL" and s.allowed_prefixes == ["+3120"] and s.allowed_countries == ["BE"]
    assert s.allowed_types == ["mobile", "fixed_line", "fixed_line_or_mobile"]
    for bad in ({"allowed_prefixes": ["31"]}, {"default_region": "XX"}, {"allowed_types": ["premium_rate"]},
                {"max_per_number_per_day": 0}, {"queues": ["x"]}, {"allowed_types": []}):
        with pytest.raises(ValueError):
            CallbacksSettings.model_validate(bad)
    s = CallbacksSettings(queue="sales", allowed_queues=["billing", "nope"])
    assert callback_issues(s, ["sales", "billing"]) == [
        "callbacks.allowed_queues[1]: unknown queue 'nope'",
        "callbacks.queue: 'sales' is not among callbacks.allowed_queues"]
    assert callback_issues(CallbacksSettings(queue="x"), []) == ["callbacks.queue: unknown queue 'x'"]


def test_the_section_is_part_of_the_config():
    from callcore.config.models import CallcoreConfig

    fields = CallcoreConfig.model_fields
    assert fields["callbacks"].annotation is CallbacksSettings
