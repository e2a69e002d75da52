"""Do-not-call lists against a real PostgreSQL: global and per campaign, soft removal, expiry, file import."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from callcore.leads import dnc
from callcore.leads.phone import InvalidNumber

NOW = datetime(2026, 7, 1, 10, 0, tzinfo=timezone.utc)


async def test_add_check_remove_global_and_campaign(pg_pool) -> None:
    entry, created = await dnc.add(pg_pool, "06-12345678", region="NL", reason="klant belde boos", source="cli",
                                   now=NOW)
    assert created and entry.number == "+31612345678" and entry.campaign is None and entry.scope == "the global list"
    again, created = await dnc.add(pg_pool, "+31 6 1234 5678", region="NL", now=NOW)
    assert not created and again.id == entry.id and again.reason == "klant belde boos"
    _, created = await dnc.add(pg_pool, "0612345678", region="NL", campaign="retention", now=NOW)
    assert created  # a campaign list is separate from the global list

    assert [e.scope for e in await dnc.check(pg_pool, "0612345678", region="NL", all_campaigns=True, now=NOW)] == [
        "the global list", "campaign retention's list"]
    assert await dnc.blocked(pg_pool, ["+31612345678", "+31612345679"], campaign="sales", now=NOW) == {"+31612345678"}

    assert await dnc.remove(pg_pool, "06 12345678", region="NL", reason="verzoek ingetrokken", now=NOW) == 1
    assert await dnc.remove(pg_pool, "06 12345678", region="NL", now=NOW) == 0
    assert await dnc.check(pg_pool, "0612345678", region="NL", campaign="sales", now=NOW) == []
    assert [e.campaign for e in await dnc.check(pg_pool, "0612345678", region="NL", campaign="retention",
                                                now=NOW)] == ["retention"]
    # The removed entry stays for audits; adding the number again creates a new active entry.
    rows = await pg_pool.fetch("SELECT removed_at, removed_reason FROM dnc_entries WHERE campaign IS NULL")
    assert len(rows) == 1 and rows[0]["removed_reason"] == "verzoek ingetrokken"
    _, created = await dnc.add(pg_pool, "0612345678", region="NL", now=NOW)
    assert created


async def test_expiry_extends_and_lapses(pg_pool) -> None:
    soon = NOW + timedelta(days=30)
    _, created = await dnc.add(pg_pool, "+31612345678", region="NL", expires_at=soon, now=NOW)
    assert created
    e, _ = await dnc.add(pg_pool, "+31612345678", region="NL", expires_at=soon + timedelta(days=60), now=NOW)
    assert e.expires_at == soon + timedelta(days=60)
    e, _ = await dnc.add(pg_pool, "+31612345678", region="NL", expires_at=soon, now=NOW)
    assert e.expires_at == soon + timedelta(days=60)  # never shortened
    assert await dnc.check(pg_pool, "+31612345678", region="NL", now=soon + timedelta(days=59)) != []
    assert await dnc.check(pg_pool, "+31612345678", region="NL", now=soon + timedelta(days=61)) == []
    e, _ = await dnc.add(pg_pool, "+31612345678", region="NL", now=NOW)
    assert e.expires_at is None  # no expiry wins


async def test_numbers_are_normalized_leniently(pg_pool) -> None:
    e, _ = await dnc.add(pg_pool, "0906-1234567", region="NL", now=NOW)  # premium rate: blocked all the same
    assert e.number == "+319061234567"
    with pytest.raises(InvalidNumber):
        await dnc.add(pg_pool, "not a number", region="NL", now=NOW)
    with pytest.raises(InvalidNumber):
        await dnc.add(pg_pool, "0612345678", region="ZZ", now=NOW)  # no region: only +CC numbers parse


async def test_import_a_plain_list_and_a_csv(pg_pool, tmp_path: Path) -> None:
    plain = tmp_path / "dnc.txt"
    plain.write_text("# Bel-me-niet, export 2026-06-30\n06-12345678\n\n+32 475 12 34 56\nonzin\n0612345678\n")
    report = await dnc.import_file(pg_pool, plain, region="NL", reason="register", now=NOW)
    assert (report.rows, report.added, report.already_listed) == (4, 2, 1)
    assert report.problems == [(5, "onzin", "not a phone number: The string supplied did not seem to be a phone "
                                             "number.")]
    assert "line 5: 'onzin'" in report.format()
    rows = {r["number"]: r for r in await pg_pool.fetch("SELECT * FROM dnc_entries")}
    assert rows["+32475123456"]["reason"] == "register" and rows["+32475123456"]["source"] == f"import:{plain}:4"

    csv_file = tmp_path / "dnc.csv"
    csv_file.write_text("Telefoon;Reden\n0612345678;al gemeld\n0687654321;klacht\n")
    report = await dnc.import_file(pg_pool, csv_file, region="NL", campaign="retention", now=NOW)
    assert (report.rows, report.added, report.already_listed) == (2, 2, 0)  # a campaign list: separate entries
    assert await pg_pool.fetchval("SELECT reason FROM dnc_entries WHERE number = '+31687654321'") == "klacht"
