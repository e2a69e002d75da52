"""``callcore kpis ...`` and ``callcore wfm staffing`` on real PostgreSQL (the scripted morning) and without one."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from callcore.cli import main
from callcore.kpi.definitions import KpiSettings
from callcore.store.migrations import migrate
from callcore.store.pool import create_pool
from tests.unit.kpi import scenario as sc

CONFIG = """
state_dir: {state}
ari: {{password: x}}
skills: [sales]
agents:
  a1: {{endpoint: PJSIP/a1, skills: {{sales: 5}}, queues: [sales]}}
  a2: {{endpoint: PJSIP/a2, skills: {{sales: 5}}, queues: [sales, support]}}
  a3: {{endpoint: PJSIP/a3, skills: {{sales: 5}}, queues: [support]}}
queues:
  sales: {{service_level: {{percent: 80, seconds: 20}}}}
  support: {{service_level: {{percent: 80, seconds: 30}}}}
campaigns:
  retention:
    mode: preview
    queue: sales
    caller_id: "+31881234567"
    default_region: NL
    dispositions: {{retained: {{label: Verlengd, is_success: true}}, not_interested: {{label: Nee}},
                   stop: {{label: Stop, adds_to_dnc: true}}}}
"""
PERIOD = ["--from", "2026-03-02T09:00:00Z", "--to", "2026-03-02T11:00:00Z"]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI configures logging for the process (stderr, warnings): give later tests the defaults back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = structlog.get_config()
    try:
        yield
    finally:
        structlog.reset_defaults()
        structlog.configure(**config)
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture
def config(tmp_path: Path, pg_dsn: str) -> list[str]:
    async def prepare() -> None:
        await migrate(pg_dsn)
        pool = await create_pool(pg_dsn, min_size=1, max_size=2)
        try:
            await sc.write_scenario(pool)
        finally:
            await pool.close()

    asyncio.run(prepare())
    path = tmp_path / "callcore.yaml"
    path.write_text(CONFIG.format(state=tmp_path / "state"))
    return ["--config", str(path), "--database-url", pg_dsn]


def test_the_config_gives_the_scenarios_settings(config: list[str]):
    from callcore.cli import _load

    settings = KpiSettings.from_config(_load(config[1]))
    assert settings == sc.SETTINGS


def test_queue_report_as_csv_and_json(config: list[str], capsys: pytest.CaptureFixture[str]):
    assert main(["kpis", "queues", *PERIOD, "--interval", "1h", *config]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    by = {(r["queue"], r["start"]): r for r in rows}
    sales9 = by[("sales", "2026-03-02T09:00:00Z")]
    assert (sales9["offered"], sales9["service_level_pct"], sales9["aht_seconds"], sales9["fcr_pct"]) == (
        "5", "33.33", "345.0", "50.0")
    assert by[("support", "2026-03-02T09:00:00Z")]["fcr_pct"] == ""  # None: nothing to measure

    assert main(["kpis", "queues", "support", *PERIOD, "--format", "json", "--tz", "Europe/Amsterdam",
                 *config]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["start"] == "2026-03-02T10:00:00+01:00" and body["timezone"] == "Europe/Amsterdam"
    assert [(r["queue"], r["offered"], r["asa_seconds"]) for r in body["rows"]] == [("support", 3, 11.67)]


def test_agents_campaign_ivr(config: list[str], capsys: pytest.CaptureFixture[str]):
    assert main(["kpis", "agents", "a2", *PERIOD, "--format", "json", *config]) == 0
    (a2,) = json.loads(capsys.readouterr().out)["rows"]
    # 09-11: C3 (250) and C9 (150) handled; busy 250 + 150 / staffed 2415 + 2700 = 7.82 %
    assert (a2["answered"], a2["aht_seconds"], a2["no_answers"], a2["occupancy_pct"]) == (2, 200.0, 1, 7.82)
    assert main(["kpis", "campaigns", "retention", *PERIOD, *config]) == 0
    (row,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert (row["attempts"], row["conversion_pct"], row["contact_rate_pct"]) == ("8", "33.33", "50.0")
    assert main(["kpis", "ivr", *PERIOD, "--short-abandon", "2", *config]) == 0
    (row,) = csv.DictReader(io.StringIO(capsys.readouterr().out))
    assert (row["flow"], row["calls"], row["containment_pct"]) == ("main", "3", "33.33")


def test_staffing_from_the_database(config: list[str], capsys: pytest.CaptureFixture[str]):
    assert main(["wfm", "staffing", "--queue", "sales", *PERIOD, "--interval", "1h", "--format", "json",
                 *config]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [(r["calls"], r["aht_seconds"], r["patience_seconds"]) for r in rows] == [(4, 345.0, 48.5),
                                                                                     (3, 210.0, None)]


def test_bad_arguments_exit_2(config: list[str], capsys: pytest.CaptureFixture[str]):
    assert main(["kpis", "queues", "nope", *config]) == 2
    assert main(["kpis", "queues", "--from", "tomorrow", *config]) == 2
    assert main(["kpis", "queues", "--tz", "Mars/Olympus", *config]) == 2
    assert main(["wfm", "staffing", "--queue", "nope", *config]) == 2
    assert "unknown queue 'nope'" in capsys.readouterr().err


def test_staffing_from_given_figures_needs_no_database(capsys: pytest.CaptureFixture[str]):
    # the textbook case: 100 calls per 30 minutes, AHT 180 s, 80 % in 20 s: 14 agents (Erlang C)
    assert main(["wfm", "staffing", "--calls", "100", "--period", "30m", "--aht", "180", "--patience", "120",
                 "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["traffic_erlangs"], out["erlang_c_agents"], out["erlang_c_service_level_pct"]) == (10.0, 14, 88.84)
    assert out["erlang_a_agents"] <= 14
    assert main(["wfm", "staffing", "--calls", "100"]) == 2
    assert main(["wfm", "staffing", "--calls", "100", "--aht", "180", "--target-sl", "100"]) == 2
    assert main(["wfm", "staffing"]) == 2
