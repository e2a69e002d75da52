"""`callcore leads import`, `callcore dnc ...` and `callcore report dialer` end to end on a real PostgreSQL
(--database-url: the test database; no embedded server of our own)."""

from __future__ import annotations

import asyncio
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from callcore.cli import build_parser, main
from callcore.leads.cli import ProgressBar
from callcore.leads.csv_import import ImportProgress

REPO = Path(__file__).resolve().parents[3]

CONFIG = """
ari: {password: x}
skills: [retention]
agents:
  agent04: {endpoint: PJSIP/agent04, skills: {retention: 9}, queues: [retention]}
queues:
  retention: {}
campaigns:
  retention_2026:
    queue: retention
    caller_id: "+31881234567"
    default_region: NL
    compliance_message: [callcore/sorry]
    windows: [{hours: "09:00-20:30"}]
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    p = tmp_path / "callcore.yaml"
    p.write_text(CONFIG)
    return p


def run(*argv: str) -> int:
    try:
        return main(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)


def test_the_commands_are_registered() -> None:
    parser = build_parser()
    args = parser.parse_args(["leads", "import", "c1", "f.csv", "--phone-column", "gsm", "--database-url", "x"])
    assert (args.campaign, args.file, args.phone_column, args.database_url) == ("c1", "f.csv", "gsm", "x")
    args = parser.parse_args(["dnc", "add", "0612345678", "0612345679", "--campaign", "c1", "--reason", "boos"])
    assert args.numbers == ["0612345678", "0612345679"] and args.campaign == "c1"
    args = parser.parse_args(["report", "dialer", "c1", "--since", "2026-07-01"])
    assert (args.kind, args.campaign) == ("dialer", "c1")
    assert parser.parse_args(["report", "ivr"]).campaign is None


def test_leads_import_prints_the_report(config: Path, pg_dsn: str, capsys) -> None:
    csv_file = REPO / "config" / "leads-example.csv"
    report_file = config.parent / "problems.csv"
    code = run("leads", "import", "retention_2026", str(csv_file), "-c", str(config), "--database-url", pg_dsn,
               "--report-file", str(report_file))
    out = capsys.readouterr().out
    assert code == 0
    assert "imported:             7" in out and "invalid:              5" in out
    assert "line 6: '0612345'" in out and "line 16: '06-55512345': unknown time zone 'Europe/Amsterdm'" in out
    assert report_file.read_text().splitlines()[0] == "line,kind,value,reason"
    assert len(report_file.read_text().splitlines()) == 1 + 7  # 5 invalid + 2 duplicates

    code = run("leads", "import", "retention_2026", str(csv_file), "-c", str(config), "--database-url", pg_dsn,
               "--json")
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["imported"] == 0 and data["already_in_campaign"] == 7


def test_leads_import_failures_exit_non_zero(config: Path, pg_dsn: str, capsys, tmp_path: Path) -> None:
    assert run("leads", "import", "nope", str(REPO / "config" / "leads-example.csv"), "-c", str(config),
               "--database-url", pg_dsn) == 2
    assert "unknown campaign 'nope' (campaigns: retention_2026)" in capsys.readouterr().err
    assert run("leads", "import", "retention_2026", str(tmp_path / "missing.csv"), "-c", str(config),
               "--database-url", pg_dsn) == 1
    assert "cannot read" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("klant,email\n1,a@b.nl\n")
    assert run("leads", "import", "retention_2026", str(bad), "-c", str(config), "--database-url", pg_dsn) == 1
    assert "no phone column" in capsys.readouterr().err


def test_dnc_commands(config: Path, pg_dsn: str, capsys, tmp_path: Path) -> None:
    db = ("-c", str(config), "--database-url", pg_dsn)
    assert run("dnc", "add", "06-12345678", "onzin", "--reason", "klacht", *db) == 1  # one bad number
    captured = capsys.readouterr()
    assert "+31612345678: added to the global list" in captured.out and "'onzin'" in captured.err
    assert run("dnc", "check", "0612345678", *db) == 3
    out = capsys.readouterr().out
    assert out.startswith("+31612345678: on the global list since ") and "source cli (klacht)" in out
    assert run("dnc", "check", "0612345679", *db) == 0
    assert run("dnc", "add", "0612345679", "--campaign", "retention_2026", *db) == 0
    assert "added to campaign retention_2026's list" in capsys.readouterr().out
    assert run("dnc", "check", "0612345679", "--campaign", "retention_2026", *db) == 3
    assert run("dnc", "remove", "0612345678", *db) == 0
    assert "removed from the global list" in capsys.readouterr().out
    assert run("dnc", "check", "0612345678", *db) == 0
    lst = tmp_path / "dnc.txt"
    lst.write_text("0687654321\n+32 475 12 34 56\n")
    assert run("dnc", "import", str(lst), *db) == 0
    assert "added:           2" in capsys.readouterr().out
    assert run("dnc", "add", "0612345678", "--campaign", "ghost", *db) == 2


def test_report_dialer(config: Path, pg_dsn: str, capsys, monkeypatch) -> None:
    from callcore.config import load_config
    from callcore.leads import store
    from callcore.store.migrations import migrate
    from callcore.store.pool import create_pool

    campaign = load_config(config).campaigns["retention_2026"]
    day = datetime(2026, 7, 1, tzinfo=timezone.utc)

    async def seed() -> None:
        await migrate(pg_dsn)
        pool = await create_pool(pg_dsn, min_size=1, max_size=2)
        try:
            for i in range(40):  # day 1: 1 abandoned of 40 live (2.5 %)
                outcome = "abandoned" if i == 0 else "human"
                await store.record_attempt(pool, "retention_2026", campaign, store.Attempt(
                    number="+31612345678", started_at=day + timedelta(hours=8, minutes=i), outcome=outcome))
            for i in range(10):  # day 2: 1 of 10 (10 %)
                await store.record_attempt(pool, "retention_2026", campaign, store.Attempt(
                    number="+31612345678", started_at=day + timedelta(days=1, hours=8, minutes=i),
                    outcome="abandoned" if i == 0 else "human"))
        finally:
            await pool.close()

    asyncio.run(seed())
    monkeypatch.setenv("CALLCORE_DATABASE_URL", pg_dsn)  # `report` takes the database from the config/environment
    code = run("report", "dialer", "retention_2026", "-c", str(config), "--until", "2026-07-03T00:00:00+00:00")
    out = capsys.readouterr().out
    assert code == 3  # a window over the limit
    lines = [line for line in out.splitlines() if line.startswith("2026-")]
    # Windows of 24 h from the campaign's midnight (30 June 22:00 UTC): two full days, a partial third, then the
    # rolling window ending at --until.
    assert [line[:16] for line in lines] == ["2026-06-30 22:00", "2026-07-01 22:00", "2026-07-02 22:00",
                                             "2026-07-02 00:00"]
    assert "2.50%" in lines[0] and lines[0].endswith("PASS")
    assert "10.00%" in lines[1] and lines[1].endswith("FAIL")
    assert lines[2].endswith("PASS") and lines[3].endswith("FAIL  (rolling window ending now)")
    assert "3 window(s), 1 over the limit: 2026-07-01 22:00" in out
    assert "uk_ofcom: at most 3.0% of live answers per 24 hours" in out
    code = run("report", "dialer", "retention_2026", "-c", str(config), "--since", "2026-07-01", "--until",
               "2026-07-02", "--json")
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["windows"][0]["live_answers"] == 40 and data["windows"][0]["passed"] is True
    assert run("report", "dialer", "-c", str(config)) == 2


def test_progress_bar_draws_only_on_a_terminal() -> None:
    out = io.StringIO()
    bar = ProgressBar(out, enabled=True, width=10)
    bar(ImportProgress(50, 100, 10, 9))
    bar(ImportProgress(100, 100, 20, 18))
    bar.done()
    text = out.getvalue()
    assert "[#####.....]  50%  10 rows, 9 imported" in text and "[##########] 100%" in text and text.endswith("\n")
    quiet = io.StringIO()
    ProgressBar(quiet)(ImportProgress(1, 2, 1, 1))  # a StringIO is not a TTY
    assert quiet.getvalue() == ""


def test_campaigns_created_through_the_api_are_known_to_the_commands(config: Path, pg_dsn: str, capsys,
                                                                     tmp_path: Path, monkeypatch) -> None:
    import asyncpg

    from callcore.store import migrate

    async def create() -> None:  # what POST /campaigns stores
        await migrate(pg_dsn)
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute(
                "INSERT INTO campaigns (name, definition, created_by, updated_by) VALUES ($1, $2::jsonb, 'api', 'api')",
                "winback", json.dumps({"queue": "retention", "caller_id": "+31881234567", "default_region": "NL",
                                       "compliance_message": ["callcore/sorry"]}))
        finally:
            await conn.close()

    asyncio.run(create())
    leads = tmp_path / "leads.csv"
    leads.write_text("phone\n0612345678\n")
    assert run("leads", "import", "winback", str(leads), "-c", str(config), "--database-url", pg_dsn) == 0
    capsys.readouterr()
    monkeypatch.setenv("CALLCORE_DATABASE_URL", pg_dsn)
    assert run("report", "dialer", "winback", "-c", str(config), "--json") == 0
    assert json.loads(capsys.readouterr().out)["campaign"] == "winback"
    assert run("kpis", "campaigns", "winback", "-c", str(config)) == 0
    assert run("report", "dialer", "nope", "-c", str(config)) == 2
