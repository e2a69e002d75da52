"""``callcore kpis ...`` (reports) and ``callcore wfm staffing`` (Erlang C / Erlang A staffing).

    callcore kpis queues [NAME] [--from T] [--to T] [--interval 15m|1h|1d] [--tz ZONE] [--format csv|json]
    callcore kpis agents [NAME] ...
    callcore kpis campaigns NAME ...
    callcore kpis ivr [FLOW] ...
    callcore wfm staffing --queue Q [--from T --to T --interval 1h] [--target-sl 80 --target-seconds 20]
    callcore wfm staffing --calls 100 --period 30m --aht 180 [--patience 120] [--target-sl 80 ...]   # no database

Without ``--from``/``--to`` a report covers today so far (the same numbers ``GET /kpis/...`` shows). Times
without an offset are read in ``--tz`` (default UTC). The formulas: docs/kpis.md. Exit codes: 0 done, 1 a
database error, 2 a bad argument or config.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime, timezone
from typing import Any

from callcore.kpi.definitions import DEFAULT_FCR_DAYS, DEFAULT_SHORT_ABANDON_SECONDS, KpiSettings
from callcore.kpi.periods import zone

EXIT_FAILED = 1
EXIT_USAGE = 2
KINDS = ("queues", "agents", "campaigns", "ivr")


def _period_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="start", help="ISO date/time (included); default: start of today")
    p.add_argument("--to", dest="end", help="ISO date/time (excluded); default: now")
    p.add_argument("--interval", choices=["15m", "1h", "1d"], help="one row per interval (default: one row)")
    p.add_argument("--tz", default=None, help="IANA zone of the intervals and of times without offset (UTC)")
    p.add_argument("--format", choices=["csv", "json"], default="csv")
    p.add_argument("--short-abandon", type=float, default=DEFAULT_SHORT_ABANDON_SECONDS,
                   help=f"seconds; quicker abandons are short (default {DEFAULT_SHORT_ABANDON_SECONDS:g})")
    p.add_argument("--fcr-days", type=float, default=DEFAULT_FCR_DAYS,
                   help=f"a repeat call within this many days is not resolved (default {DEFAULT_FCR_DAYS:g})")
    p.add_argument("--config", "-c", default=None, help="config file (default: config/callcore.yaml)")
    p.add_argument("--database-url", default=None,
                   help="postgresql://... (default: the config's, CALLCORE_DATABASE_URL, or the embedded server)")


def add_kpi_parsers(subparsers: Any) -> None:
    """Register ``kpis`` and ``wfm`` on the ``callcore`` subparsers."""
    p = subparsers.add_parser("kpis", help="KPI reports from the events in PostgreSQL (CSV or JSON)")
    ksub = p.add_subparsers(dest="kpis_kind", required=True)
    for kind, text in (("queues", "per queue: offered, answered, abandoned, service level, ASA, AHT, FCR, CSAT"),
                       ("agents", "per agent: answered, AHT, occupancy, time per state, FCR, CSAT"),
                       ("campaigns", "per outbound campaign: contact rate, conversion, abandonment"),
                       ("ivr", "per IVR flow: containment")):
        k = ksub.add_parser(kind, help=text)
        k.add_argument("name", nargs="?" if kind != "campaigns" else None, help="only this one")
        _period_args(k)
        k.set_defaults(func=cmd_kpis, kind=kind)

    p = subparsers.add_parser("wfm", help="workforce management: staffing with Erlang C and Erlang A")
    wsub = p.add_subparsers(dest="wfm_command", required=True)
    s = wsub.add_parser("staffing", help="agents needed for a service-level target, from measured traffic "
                                         "(--queue) or from given figures (--calls, --period, --aht)")
    s.add_argument("--queue", help="measure this queue's intervals in the database")
    s.add_argument("--calls", type=float, help="calls in the period (no database)")
    s.add_argument("--period", default="30m", help="with --calls: the period's length, e.g. 15m, 30m, 1h, 900 "
                                                   "(seconds)")
    s.add_argument("--aht", type=float, help="with --calls: average handle time, seconds")
    s.add_argument("--patience", type=float, help="with --calls: mean caller patience, seconds (Erlang A); "
                                                  "absent: nobody abandons")
    s.add_argument("--target-sl", type=float, help="percent answered within --target-seconds (default: the "
                                                   "queue's, or 80)")
    s.add_argument("--target-seconds", type=float, help="default: the queue's, or 20")
    s.add_argument("--max-occupancy", type=float, help="percent")
    s.add_argument("--max-abandon", type=float, help="percent (Erlang A)")
    _period_args(s)
    s.set_defaults(func=cmd_wfm_staffing)


# ---- shared ----------------------------------------------------------------------------------------------------


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _config(args: argparse.Namespace) -> Any:
    from callcore.leads.cli import _config as config_with_api_campaigns

    return config_with_api_campaigns(args)  # the file's config, plus campaigns created through the API


def _time(text: str | None, tz: Any) -> datetime | None:
    if text is None:
        return None
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(timezone.utc)


def _settings(args: argparse.Namespace, config: Any) -> KpiSettings:
    return KpiSettings.from_config(config, short_abandon_seconds=args.short_abandon, fcr_days=args.fcr_days,
                                   timezone=args.tz or "UTC")


def _print(rows: list[Any], envelope: dict[str, Any], fmt: str, columns: list[str]) -> None:
    from callcore.kpi.report import to_csv

    if fmt == "json":
        body = {**envelope, "rows": [r.model_dump(mode="json") for r in rows]}
        print(json.dumps(body, indent=2, default=str))
    else:
        sys.stdout.write(to_csv(rows, columns))


def _envelope(kpis: Any, start: datetime, end: datetime, args: argparse.Namespace) -> dict[str, Any]:
    z = zone(args.tz)
    return {"start": start.astimezone(z).isoformat(), "end": end.astimezone(z).isoformat(),
            "as_of": kpis.clock().astimezone(z).isoformat(), "interval": args.interval, "timezone": args.tz or "UTC",
            "short_abandon_seconds": args.short_abandon, "fcr_days": args.fcr_days}


async def _with_kpis(config: Any, settings: KpiSettings, work: Any) -> Any:
    from callcore.kpi.store import PgKpis
    from callcore.leads.cli import open_pool

    async with open_pool(config) as pool:
        return await work(PgKpis(pool, settings))


# ---- commands --------------------------------------------------------------------------------------------------


def cmd_kpis(args: argparse.Namespace) -> int:
    from callcore.kpi.report import AgentKpiRow, CampaignKpiRow, IvrKpiRow, QueueKpiRow

    try:
        tz = zone(args.tz)
        start, end = _time(args.start, tz), _time(args.end, tz)
    except ValueError as exc:
        return _fail(str(exc))
    config = _config(args)
    settings = _settings(args, config)
    kind = args.kind
    known = {"queues": settings.queues, "campaigns": settings.campaigns}.get(kind, ())
    if args.name and known and args.name not in known:
        return _fail(f"unknown {kind[:-1]} {args.name!r} (known: {', '.join(known)})")
    model = {"queues": QueueKpiRow, "agents": AgentKpiRow, "campaigns": CampaignKpiRow, "ivr": IvrKpiRow}[kind]

    async def work(kpis: Any) -> tuple[list[Any], dict[str, Any]]:
        s, e = kpis.period(start, end, args.tz)
        if e <= s:
            raise ValueError("the period is empty (--to is not after --from)")
        fetch = getattr(kpis, kind)
        rows = await fetch(s, e, args.interval, args.tz, args.name)
        return rows, _envelope(kpis, s, e, args)

    return _run_and_print(config, settings, work, args, model)


def _seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    text = text.strip()
    if text and text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def cmd_wfm_staffing(args: argparse.Namespace) -> int:
    from callcore.kpi.staffing import StaffingInput, StaffingRow, staffing

    pct = {name: (None if getattr(args, name) is None else getattr(args, name) / 100.0)
           for name in ("target_sl", "max_occupancy", "max_abandon")}
    if args.calls is not None:
        if args.aht is None:
            return _fail("--calls needs --aht (average handle time, seconds)")
        try:
            inp = StaffingInput(args.calls, _seconds(args.period), args.aht,
                                args.target_seconds if args.target_seconds is not None else 20.0,
                                pct["target_sl"] if pct["target_sl"] is not None else 0.80, args.patience,
                                pct["max_occupancy"], pct["max_abandon"])
            c, a = staffing(inp)
        except ValueError as exc:
            return _fail(str(exc))
        result = {
            "calls": inp.calls, "period_seconds": inp.interval_seconds, "aht_seconds": inp.aht_seconds,
            "traffic_erlangs": round(inp.traffic, 4), "target_sl_pct": round(inp.target_sl * 100, 2),
            "target_seconds": inp.target_seconds, "patience_seconds": inp.patience_seconds,
            **{f"{m.model}_{k}": v for m in (c, a) for k, v in (
                ("agents", m.agents), ("service_level_pct", round(m.service_level * 100, 2)),
                ("asa_seconds", round(m.asa_seconds, 2)), ("occupancy_pct", round(m.occupancy * 100, 2)))},
            "erlang_a_abandon_pct": round(a.abandon_rate * 100, 2),
        }
        if args.format == "json":
            print(json.dumps(result, indent=2))
        else:
            print(",".join(result))
            print(",".join("" if v is None else str(v) for v in result.values()))
        return 0
    if not args.queue:
        return _fail("give --queue (measured from the database) or --calls with --aht")
    try:
        tz = zone(args.tz)
        start, end = _time(args.start, tz), _time(args.end, tz)
    except ValueError as exc:
        return _fail(str(exc))
    config = _config(args)
    settings = _settings(args, config)
    if settings.queues and args.queue not in settings.queues:
        return _fail(f"unknown queue {args.queue!r} (known: {', '.join(settings.queues)})")

    async def work(kpis: Any) -> tuple[list[Any], dict[str, Any]]:
        s, e = kpis.period(start, end, args.tz)
        if e <= s:
            raise ValueError("the period is empty (--to is not after --from)")
        rows = await kpis.staffing(args.queue, s, e, args.interval, args.tz, target_sl=pct["target_sl"],
                                   target_seconds=args.target_seconds, max_occupancy=pct["max_occupancy"],
                                   max_abandon=pct["max_abandon"])
        return rows, _envelope(kpis, s, e, args)

    return _run_and_print(config, settings, work, args, StaffingRow)


def _run_and_print(config: Any, settings: Any, work: Any, args: argparse.Namespace, model: Any) -> int:
    """Run ``work`` against the KPI store, print its rows as the user asked; bad input and database trouble
    become an exit code with a one-line message."""
    try:
        rows, envelope = asyncio.run(_with_kpis(config, settings, work))
    except ValueError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"database: {exc}", EXIT_FAILED)
    _print(rows, envelope, args.format, list(model.model_fields))
    return 0


__all__ = ["add_kpi_parsers", "cmd_kpis", "cmd_wfm_staffing"]
