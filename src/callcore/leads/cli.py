"""Command line for leads, do-not-call lists and the dialer's compliance report.

``add_leads_parser(subparsers)`` adds ``callcore leads import`` and ``callcore dnc add|remove|import|check``;
``cmd_report_dialer`` serves ``callcore report dialer CAMPAIGN``. Every command opens the configured
PostgreSQL (or the embedded one under ``state_dir``, stopped again afterwards unless it was already running),
applies pending migrations, and works in one short session.

Exit codes: 0 success; 1 the file cannot be read or imported, a database error, a bad number; 2 an invalid
config or an unknown campaign; 3 ``dnc check``: the number is listed (0: it may be called); ``report dialer``:
a window failed its limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime, time as dtime, timedelta, timezone
from typing import Any, TextIO

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_LISTED = 3  # dnc check: the number is listed
EXIT_OVER_LIMIT = 3  # report dialer: a window is over its abandonment limit


def _default_config() -> str:
    from callcore.cli import DEFAULT_CONFIG

    return DEFAULT_CONFIG


def _db_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", default=None, help="config file (default: config/callcore.yaml)")
    p.add_argument("--database-url", default=None,
                   help="postgresql://... (default: the config's, CALLCORE_DATABASE_URL, or the embedded server)")


def add_leads_parser(sub: Any) -> None:
    """Register ``leads`` and ``dnc`` on the ``callcore`` subparsers."""
    p = sub.add_parser("leads", help="outbound leads: import a CSV file into a campaign")
    lsub = p.add_subparsers(dest="leads_action", required=True)
    i = lsub.add_parser("import", help="import leads from a CSV file (header row; phone column auto-detected)")
    i.add_argument("campaign", help="a campaign of the config's 'campaigns:'")
    i.add_argument("file", help="CSV file with a header row")
    _db_args(i)
    i.add_argument("--phone-column", help="the column holding the number (default: phone, number, phone_number, ...)")
    i.add_argument("--encoding", default="utf-8-sig", help="file encoding (default UTF-8; Excel NL: cp1252)")
    i.add_argument("--delimiter", help="field delimiter (default: detected from the header: , ; tab |)")
    i.add_argument("--batch-size", type=int, default=1000)
    i.add_argument("--report-file", help="write every problem row (line, kind, value, reason) to this CSV file")
    i.add_argument("--show", type=int, default=100, help="problem rows printed per kind (default 100; 0: all)")
    i.add_argument("--json", action="store_true", help="print the report as JSON")
    i.set_defaults(func=cmd_leads_import)

    p = sub.add_parser("dnc", help="do-not-call lists: global, or a campaign's (--campaign)")
    dsub = p.add_subparsers(dest="dnc_action", required=True)
    a = dsub.add_parser("add", help="put numbers on a do-not-call list")
    a.add_argument("numbers", nargs="+")
    a.add_argument("--reason", default="")
    a.add_argument("--expires", help="ISO date or date-time when the entry lapses (default: never)")
    r = dsub.add_parser("remove", help="take numbers off a do-not-call list (kept in the history)")
    r.add_argument("numbers", nargs="+")
    r.add_argument("--reason", default="")
    im = dsub.add_parser("import", help="add every number of a file (CSV with a phone column, or one per line)")
    im.add_argument("file")
    im.add_argument("--reason", default="")
    im.add_argument("--encoding", default="utf-8-sig")
    c = dsub.add_parser("check", help="is a number listed? exit 0: may be called, 3: listed")
    c.add_argument("number")
    for q in (a, r, im, c):
        q.add_argument("--campaign", help="a campaign's own list (default: the global list)")
        q.add_argument("--region", help="for numbers without a country code (default: the campaign's region)")
        _db_args(q)
        q.set_defaults(func=cmd_dnc)


# ---- shared --------------------------------------------------------------------------------------------------


def _config(args: argparse.Namespace) -> Any:
    from pydantic import SecretStr

    from callcore.cli import _load
    from callcore.logs import configure_logging

    config = _load(args.config or _default_config())  # exits 2 with every config error
    configure_logging(config.logging.format, "warning")
    if getattr(args, "database_url", None):
        config = config.model_copy(
            update={"database": config.database.model_copy(update={"url": SecretStr(args.database_url)})})
    return with_api_campaigns(config)


def with_api_campaigns(config: Any) -> Any:
    """The config with the campaigns created through the API (PostgreSQL) beside the file's: the commands
    (leads, dnc, report dialer, kpis) know every campaign the running callcore dials. A name in both is the
    file's, as in the service."""
    from callcore.campaigns.catalog import all_campaigns, load_api_campaigns

    async def load() -> Any:
        async with open_pool(config) as pool:
            return await load_api_campaigns(pool)

    try:
        stored = asyncio.run(load())
    except Exception as exc:  # noqa: BLE001 - the file's campaigns still work; the command says what it could not do
        print(f"warning: campaigns created through the API could not be read: {exc}", file=sys.stderr)
        return config
    if not stored:
        return config
    return config.model_copy(update={"campaigns": all_campaigns(config.campaigns, stored)})


def _campaign(config: Any, name: str) -> Any:
    campaign = config.campaigns.get(name)
    if campaign is None:
        known = ", ".join(sorted(config.campaigns)) or "none configured"
        print(f"error: unknown campaign {name!r} (campaigns: {known})", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG)
    return campaign


@contextlib.asynccontextmanager
async def open_pool(config: Any) -> AsyncIterator[Any]:
    """A small pool on the configured database, migrated. An embedded server started here is stopped on exit;
    one that was already running (a live callcore) is left alone."""
    from callcore.app import close_database, open_database
    from callcore.store import create_pool, migrate

    db = await open_database(config)
    try:
        pool = await create_pool(db.dsn, min_size=1, max_size=2)
        try:
            await migrate(pool)
            yield pool
        finally:
            await pool.close()
    finally:
        await close_database(db)


class ProgressBar:
    """``[#####.....]  45%  12,345 rows`` on a terminal, redrawn at most 10 times a second; silent otherwise."""

    def __init__(self, stream: TextIO = sys.stderr, *, enabled: bool | None = None, width: int = 30) -> None:
        self.stream = stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self.width = width
        self._last = 0.0
        self._drawn = False

    def __call__(self, p: Any) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and not (p.bytes_total and p.bytes_read >= p.bytes_total):
            return
        self._last = now
        if p.bytes_total:
            frac = min(1.0, p.bytes_read / p.bytes_total)
            filled = int(frac * self.width)
            bar = f"[{'#' * filled}{'.' * (self.width - filled)}] {frac:4.0%}"
        else:
            bar = f"{p.bytes_read / 1e6:.1f} MB"
        self.stream.write(f"\r{bar}  {p.rows:,} rows, {p.imported:,} imported ")
        self.stream.flush()
        self._drawn = True

    def done(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()


# ---- leads import --------------------------------------------------------------------------------------------


def cmd_leads_import(args: argparse.Namespace) -> int:
    from callcore.leads.csv_import import LeadFileError, import_leads

    config = _config(args)
    campaign = _campaign(config, args.campaign)
    if campaign.fallback_timezone() is None:  # the config check already reports this; belt and braces
        print(f"error: campaign {args.campaign} has no time zone", file=sys.stderr)
        return EXIT_CONFIG
    try:  # fail before starting a database when the file is unreadable
        open(args.file, "rb").close()
    except OSError as exc:
        print(f"error: {args.file}: cannot read: {exc.strerror}", file=sys.stderr)
        return EXIT_FAILED
    bar = ProgressBar()

    async def _run() -> Any:
        async with open_pool(config) as pool:
            return await import_leads(
                pool, args.campaign, campaign, args.file, phone_column=args.phone_column, encoding=args.encoding,
                delimiter={"tab": "\t", "\\t": "\t"}.get(args.delimiter or "", args.delimiter),
                batch_size=max(1, args.batch_size), progress=bar,
            )

    try:
        report = asyncio.run(_run())
    except LeadFileError as exc:
        bar.done()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    bar.done()
    if args.report_file:
        report.write_csv(args.report_file)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.format(limit=None if args.show == 0 else args.show))
        if args.report_file:
            print(f"\nevery problem row: {args.report_file}")
    return 0


# ---- do-not-call ---------------------------------------------------------------------------------------------


def _region(config: Any, args: argparse.Namespace) -> str:
    if args.region:
        return args.region.upper()
    if args.campaign:
        return _campaign(config, args.campaign).default_region
    regions = {c.default_region for c in config.campaigns.values()}
    # One region for the whole contact center: numbers may be written nationally. Otherwise only +CC... parses.
    return regions.pop() if len(regions) == 1 else "ZZ"


def _parse_when(text: str) -> datetime:
    value = datetime.fromisoformat(text)  # a bare date is its midnight
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def cmd_dnc(args: argparse.Namespace) -> int:
    from callcore.leads import dnc
    from callcore.leads.csv_import import LeadFileError
    from callcore.leads.phone import InvalidNumber

    config = _config(args)
    if args.campaign:
        _campaign(config, args.campaign)
    region = _region(config, args)
    scope = f"campaign {args.campaign}'s list" if args.campaign else "the global list"
    action = args.dnc_action
    if action == "import":
        try:
            open(args.file, "rb").close()
        except OSError as exc:
            print(f"error: {args.file}: cannot read: {exc.strerror}", file=sys.stderr)
            return EXIT_FAILED

    async def _run() -> int:
        async with open_pool(config) as pool:
            if action == "add":
                expires = _parse_when(args.expires) if args.expires else None
                failed = 0
                for raw in args.numbers:
                    try:
                        entry, created = await dnc.add(pool, raw, region=region, campaign=args.campaign,
                                                       reason=args.reason, source="cli", expires_at=expires)
                    except InvalidNumber as exc:
                        print(f"error: {raw!r}: {exc}", file=sys.stderr)
                        failed += 1
                        continue
                    print(f"{entry.number}: {'added to' if created else 'already on'} {scope}")
                return EXIT_FAILED if failed else 0
            if action == "remove":
                failed = 0
                for raw in args.numbers:
                    try:
                        n = await dnc.remove(pool, raw, region=region, campaign=args.campaign, reason=args.reason)
                    except InvalidNumber as exc:
                        print(f"error: {raw!r}: {exc}", file=sys.stderr)
                        failed += 1
                        continue
                    print(f"{raw}: {'removed from' if n else 'was not on'} {scope}")
                return EXIT_FAILED if failed else 0
            if action == "import":
                bar = ProgressBar()
                report = await dnc.import_file(pool, args.file, region=region, campaign=args.campaign,
                                               reason=args.reason, encoding=args.encoding, progress=bar)
                bar.done()
                print(report.format())
                return 0
            try:  # check
                entries = await dnc.check(pool, args.number, region=region, campaign=args.campaign,
                                          all_campaigns=args.campaign is None)
            except InvalidNumber as exc:
                print(f"error: {args.number!r}: {exc}", file=sys.stderr)
                return EXIT_FAILED
            if not entries:
                print(f"{args.number}: not on any do-not-call list" if args.campaign is None else
                      f"{args.number}: not on the global list nor {scope}")
                return 0
            for e in entries:
                until = f", until {e.expires_at:%Y-%m-%d %H:%M %Z}" if e.expires_at else ""
                why = f" ({e.reason})" if e.reason else ""
                print(f"{e.number}: on {e.scope} since {e.added_at:%Y-%m-%d %H:%M %Z}{until}, "
                      f"source {e.source}{why}")
            return EXIT_LISTED

    try:
        return asyncio.run(_run())
    except LeadFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


# ---- report dialer -------------------------------------------------------------------------------------------


def format_ledger(campaign_name: str, campaign: Any, windows: list[Any], current: Any) -> str:
    policy = campaign.policy()
    fp = " + AMD false-positive estimate" if policy.count_machine_false_positives else ""
    lines = [
        f"abandonment ledger: campaign {campaign_name} ({policy.preset}: at most {policy.limit:.1%} of live answers "
        f"per {_duration(policy.window_seconds)}; abandoned = no agent within {policy.agent_connect_seconds:g} s{fp})",
        "",
        f"{'window start (UTC)':<20} {'window end (UTC)':<20} {'attempts':>9} {'live':>7} {'abandoned':>9} "
        f"{'machine':>8} {'fp est.':>7} {'rate':>7} {'limit':>6}  result",
    ]
    for w in [*windows, current]:
        label = "" if w is not current else "  (rolling window ending now)"
        lines.append(
            f"{w.start:%Y-%m-%d %H:%M}     {w.end:%Y-%m-%d %H:%M}     {w.attempts:>9,} {w.live_answers:>7,} "
            f"{w.abandoned:>9,} {w.machine:>8,} {w.false_positives:>7.1f} {w.rate:>7.2%} {w.limit:>6.1%}  "
            f"{'PASS' if w.passed else 'FAIL'}{label}"
        )
    failed = [w for w in windows if not w.passed]
    lines += ["", f"{len(windows)} window(s), {len(failed)} over the limit" + (
        ": " + ", ".join(f"{w.start:%Y-%m-%d %H:%M}" for w in failed) if failed else "")]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds % 86400 == 0:
        days = int(seconds // 86400)
        return f"{days} day{'s' if days != 1 else ''}" if days != 1 else "24 hours"
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)} hours"
    return f"{seconds:g} s"


def cmd_report_dialer(args: argparse.Namespace) -> int:
    """``callcore report dialer CAMPAIGN [--since T] [--until T] [--json]``: the abandonment ledger by window."""
    from callcore.leads import store
    from callcore.leads.phone import zone
    from callcore.leads.windows import local_to_utc

    if not getattr(args, "campaign", None):
        print("error: report dialer needs a CAMPAIGN", file=sys.stderr)
        return EXIT_CONFIG
    config = _config(args)
    campaign = _campaign(config, args.campaign)
    policy = campaign.policy()
    tz_name = campaign.fallback_timezone() or "UTC"

    def parse(text: str | None) -> datetime | None:
        return None if text is None else _parse_when(text)

    async def _run() -> tuple[list[Any], Any]:
        now = datetime.now(timezone.utc)
        async with open_pool(config) as pool:
            until = parse(args.until) or now
            since = parse(args.since)
            if since is None:
                first = await store.first_attempt_at(pool, args.campaign)
                start = first or (until - timedelta(seconds=policy.window_seconds))
                # Windows start at midnight on the campaign's clock (a day of calls is one UK window).
                local_day = start.astimezone(zone(tz_name)).date()
                since = local_to_utc(datetime.combine(local_day, dtime()), tz_name)
            windows = await store.abandonment_ledger(pool, args.campaign, campaign, since=since, until=until)
            current = await store.current_abandon_rate(pool, args.campaign, campaign, now=until)
            return windows, current

    windows, current = asyncio.run(_run())
    if getattr(args, "json", False):
        print(json.dumps({"campaign": args.campaign, "preset": policy.preset, "limit": policy.limit,
                          "window_seconds": policy.window_seconds, "windows": [w.as_dict() for w in windows],
                          "rolling": current.as_dict()}, indent=2))
    else:
        print(format_ledger(args.campaign, campaign, windows, current))
    return EXIT_OVER_LIMIT if any(not w.passed for w in windows) else 0


__all__ = ["ProgressBar", "add_leads_parser", "cmd_dnc", "cmd_leads_import", "cmd_report_dialer", "format_ledger",
           "open_pool"]
