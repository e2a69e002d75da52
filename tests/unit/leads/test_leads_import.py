"""CSV lead import against a real PostgreSQL (the pg_pool fixture): report, line numbers, batches, speed."""

from __future__ import annotations

import io
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from callcore.campaigns.model import CampaignConfig
from callcore.leads import dnc
from callcore.leads.csv_import import ImportProgress, LeadFileError, import_leads, sniff_delimiter

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 7, 1, 10, 0, tzinfo=timezone.utc)
CAMPAIGN = CampaignConfig(caller_id="+31881234567", default_region="NL", queue="retention",
                          compliance_message=["callcore/sorry"])


def write(tmp_path: Path, text: str, name: str = "leads.csv", encoding: str = "utf-8") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


async def test_the_example_file_report(pg_pool) -> None:
    path = REPO / "config" / "leads-example.csv"
    await dnc.add(pg_pool, "020-1234567", region="NL", reason="asked us", now=NOW)
    report = await import_leads(pg_pool, "retention_2026", CAMPAIGN, path, now=NOW)
    assert report.phone_column == "telefoon" and report.delimiter == ";"
    got = [(p.line, p.kind) for p in report.problems]
    assert got == [
        (4, "on_dnc"),
        (6, "invalid"),  # 0612345: too short
        (7, "duplicate_in_file"),  # 0612345678 = line 2
        (8, "invalid"),  # no number
        (9, "invalid"),  # 0906: premium rate
        (12, "duplicate_in_file"),  # 06 1234 5678 = line 2
        (14, "invalid"),  # 7 fields
        (16, "invalid"),  # Europe/Amsterdm
    ]
    assert (report.rows, report.imported, report.blank_lines) == (14, 7, 1)
    assert report.rows == report.imported + report.invalid + report.duplicates_in_file + report.already_in_campaign
    reasons = {p.line: p.reason for p in report.problems}
    assert "also on line 2" in reasons[7] and "premium-rate" in reasons[9] and "7 fields" in reasons[14]
    assert "Europe/Amsterdm" in reasons[16] and reasons[8] == "no phone number"
    rows = {r["number"]: r for r in await pg_pool.fetch("SELECT * FROM leads WHERE campaign = 'retention_2026'")}
    jan = rows["+31612345678"]
    assert jan["name"] == "Jan de Vries" and jan["source_line"] == 2 and jan["status"] == "pending"
    assert jan["fields"] == {"klantnummer": "100231", "contract_end": "2026-08-31", "pakket": "Internet 500"}
    assert jan["timezone"] == "Europe/Amsterdam" and jan["tz_source"] == "number" and jan["next_attempt_at"] == NOW
    assert rows["+493012345678"]["timezone"] == "Europe/Berlin"
    assert rows["+447911123456"]["timezone"] == "Europe/London"
    sophie = rows["+31687654321"]
    assert (sophie["timezone"], sophie["tz_source"]) == ("Europe/Madrid", "column")
    assert (report.tz_from_number, report.tz_from_column, report.tz_from_campaign) == (6, 1, 0)
    imp = await pg_pool.fetchrow("SELECT * FROM lead_imports WHERE import_id = $1", report.import_id)
    assert imp["counts"]["imported"] == 7 and imp["finished_at"] is not None
    text = report.format()
    assert "line 6: '0612345'" in text and "imported:             7" in text and "on do-not-call now:   1" in text

    # The same file again: everything valid is already in the campaign, reported with the existing lead.
    again = await import_leads(pg_pool, "retention_2026", CAMPAIGN, path, now=NOW)
    assert again.imported == 0 and again.already_in_campaign == 7
    first = next(p for p in again.problems if p.kind == "already_in_campaign")
    assert first.line == 2 and "leads-example.csv line 2" in first.reason
    # Another campaign may hold the same numbers.
    other = await import_leads(pg_pool, "winback", CAMPAIGN, path, now=NOW)
    assert other.imported == 7


async def test_header_detection_delimiters_quotes_and_encodings(pg_pool, tmp_path: Path) -> None:
    text = (
        "Phone Number,Naam,Country,notes\r\n"
        '"+31 6 1111 2222","Vries, Jan de",,"says ""call after 6"""\r\n'
        '"0475 12 34 56",Lotte Peeters,be,"two\r\nlines"\r\n'
        "0612340000,Piet,XX,\r\n"
        "0623456789,Ana,NL,,\r\n"  # a trailing delimiter: an empty extra field is fine
    )
    path = write(tmp_path, text, encoding="cp1252")
    cp1252 = write(tmp_path, "phone;naam\n0612345678;Zoë\n", "x.csv", "cp1252")
    with pytest.raises(LeadFileError, match="line 2: not utf-8-sig text"):
        await import_leads(pg_pool, "c", CAMPAIGN, cp1252, now=NOW)
    report = await import_leads(pg_pool, "c", CAMPAIGN, path, encoding="cp1252", now=NOW)
    assert report.phone_column == "Phone Number" and report.delimiter == ","
    assert [(p.line, p.kind) for p in report.problems] == [(5, "invalid")]  # country XX (line 5: after 2 lines)
    rows = {r["number"]: r for r in await pg_pool.fetch("SELECT * FROM leads")}
    assert rows["+31611112222"]["name"] == "Vries, Jan de"
    assert rows["+31611112222"]["fields"] == {"notes": 'says "call after 6"'}
    assert rows["+32475123456"]["region"] == "BE" and rows["+32475123456"]["timezone"] == "Europe/Brussels"
    assert rows["+32475123456"]["source_line"] == 3
    assert rows["+31623456789"]["source_line"] == 6
    assert sniff_delimiter("a;b;c\n") == ";" and sniff_delimiter("a\tb\n") == "\t" and sniff_delimiter("phone\n") == ","


async def test_file_level_errors_import_nothing(pg_pool, tmp_path: Path) -> None:
    with pytest.raises(LeadFileError, match="cannot read"):
        await import_leads(pg_pool, "c", CAMPAIGN, tmp_path / "missing.csv", now=NOW)
    with pytest.raises(LeadFileError, match="empty"):
        await import_leads(pg_pool, "c", CAMPAIGN, write(tmp_path, "\n\n"), now=NOW)
    with pytest.raises(LeadFileError, match="no phone column.*klant, email"):
        await import_leads(pg_pool, "c", CAMPAIGN, write(tmp_path, "klant,email\n1,a@b.nl\n"), now=NOW)
    with pytest.raises(LeadFileError, match="no column 'gsm'"):
        await import_leads(pg_pool, "c", CAMPAIGN, write(tmp_path, "phone\n0612345678\n"), phone_column="gsm",
                           now=NOW)
    # A decoding error half-way: the batches before it are rolled back too.
    good = "".join(f"06{20000000 + i}\n" for i in range(50))
    bad = write(tmp_path, "phone\n" + good, "bad.csv")
    bad.write_bytes(bad.read_bytes() + b"06\xff\xfe12345678\n")
    with pytest.raises(LeadFileError, match="line 52: not utf-8-sig text"):
        await import_leads(pg_pool, "c", CAMPAIGN, bad, batch_size=10, now=NOW)
    assert await pg_pool.fetchval("SELECT count(*) FROM leads") == 0
    assert await pg_pool.fetchval("SELECT count(*) FROM lead_imports") == 0


async def test_a_stream_with_an_explicit_phone_column(pg_pool) -> None:
    upload = io.BytesIO("id|gsm|number\n1|06-12345678|42\n2|06-12345679|43\n".encode())
    report = await import_leads(pg_pool, "c", CAMPAIGN, upload, source_name="upload.csv", phone_column="GSM",
                                now=NOW)
    assert report.imported == 2 and report.source == "upload.csv" and report.delimiter == "|"
    fields = await pg_pool.fetchval("SELECT fields FROM leads WHERE number = '+31612345678'")
    assert fields == {"id": "1", "number": "42"}


async def test_ten_thousand_rows_with_progress_and_timing(pg_pool, tmp_path: Path) -> None:
    lines = ["phone,name,segment,contract_end"]
    for i in range(10_000):
        if i % 500 == 7:
            lines.append(f"06-{i:04d},Invalid {i},gold,2026-09-01")  # too short
        elif i % 1000 == 13:
            lines.append(f"06-2{(i - 1):07d},Duplicate {i},silver,2026-09-01")  # same number as the row before
        else:
            lines.append(f"06-2{i:07d},Customer {i},bronze,2026-09-01")
    path = write(tmp_path, "\n".join(lines) + "\n", "big.csv")
    seen: list[ImportProgress] = []
    t0 = time.perf_counter()
    report = await import_leads(pg_pool, "big", CAMPAIGN, path, progress=seen.append, batch_size=1000, now=NOW)
    elapsed = time.perf_counter() - t0
    assert report.rows == 10_000 and report.invalid == 20 and report.duplicates_in_file == 10
    assert report.imported == 10_000 - 30 == await pg_pool.fetchval("SELECT count(*) FROM leads")
    assert len(seen) == 10 and seen[-1].bytes_read == seen[-1].bytes_total == path.stat().st_size
    assert [s.imported for s in seen] == sorted(s.imported for s in seen)
    bad = report.of("invalid")[0]
    assert (bad.line, bad.value) == (9, "06-0007")
    print(f"\n10,000-row import: {elapsed:.2f} s, {report.rows / elapsed:,.0f} rows/s")
    assert elapsed < 15  # about 1 s on 2 cores; generous for a loaded CI machine
