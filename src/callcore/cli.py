"""The ``callcore`` command line."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from callcore import __version__
from callcore.config import CallcoreConfig, ConfigError, load_config

# `callcore-admin` (deploy/install.sh) sets $CALLCORE_CONFIG to the installed file for every command.
DEFAULT_CONFIG = os.environ.get("CALLCORE_CONFIG") or "config/callcore.yaml"


def _known_flows() -> set[str]:
    from callcore.ivr.registry import CODE_FLOWS

    return set(CODE_FLOWS)


def _load(path: str) -> CallcoreConfig:
    try:
        return load_config(Path(path), known_flows=_known_flows())
    except ConfigError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    from callcore.ivr.sounds import offline_sounds

    sounds = offline_sounds()
    if sounds is None:
        print("note: sounds not checked (no Asterisk sound tree here: `callcore asterisk build`)", file=sys.stderr)
    try:
        config = load_config(Path(args.file), known_flows=_known_flows(), known_sounds=sounds)
    except ConfigError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        print(f"{args.file}: {len(exc.issues)} error(s)", file=sys.stderr)
        return 1
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.graph:
        from callcore.ivr.graph import render_dot, render_tree

        flow = config.flows.get(args.graph)
        if flow is None:
            print(f"error: no flow named {args.graph!r} (flows: {', '.join(sorted(config.flows))})", file=sys.stderr)
            return 1
        print(render_dot(flow, name=args.graph) if args.dot else render_tree(flow, name=args.graph))
        return 0
    print(f"{args.file}: OK (version {config.version}, {len(config.flows)} flow(s))")
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    """Validate here first, then ask the running callcore (SIGHUP) to reload, and report what it said."""
    import json
    import os
    import signal
    import time

    config = _load(args.config)  # exits 2 with every error: the running process is not touched
    pid_file = config.state_dir / "callcore.pid"
    status_file = config.state_dir / "reload-status.json"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        print(f"error: callcore does not seem to run (no pid in {pid_file})", file=sys.stderr)
        return 1
    before = status_file.stat().st_mtime_ns if status_file.exists() else 0
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        print(f"error: no process {pid} (stale {pid_file})", file=sys.stderr)
        return 1
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if status_file.exists() and status_file.stat().st_mtime_ns != before:
            result = json.loads(status_file.read_text())
            if result.get("ok"):
                print(f"reloaded: version {result['version']}")
                for w in result.get("warnings", []):
                    print(f"warning: {w}", file=sys.stderr)
                return 0
            for e in result.get("errors", []):
                print(f"error: {e}", file=sys.stderr)
            print("reload rejected: the running config is unchanged", file=sys.stderr)
            return 1
        time.sleep(0.1)
    print(f"error: callcore (pid {pid}) did not report a reload within {args.timeout:g} s", file=sys.stderr)
    return 1


def cmd_report(args: argparse.Namespace) -> int:
    if args.kind == "dialer":
        from callcore.leads.cli import cmd_report_dialer

        return cmd_report_dialer(args)
    from datetime import datetime, timedelta, timezone

    from callcore.app import close_database, open_database
    from callcore.ivr.report import format_report, ivr_report
    from callcore.store import create_pool

    config = _load(args.config)

    def parse(text: str | None, default: datetime) -> datetime:
        if text is None:
            return default
        value = datetime.fromisoformat(text)
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

    now = datetime.now(timezone.utc)
    since = parse(args.since, now - timedelta(days=1))
    until = parse(args.until, now)

    async def _run() -> str:
        db = await open_database(config)
        try:
            pool = await create_pool(db.dsn, min_size=1, max_size=2)
            try:
                reports = await ivr_report(pool, since, until)
            finally:
                await pool.close()
        finally:
            await close_database(db)
        if args.json:
            import dataclasses
            import json

            return json.dumps([{**dataclasses.asdict(r), "containment_rate": r.containment_rate} for r in reports],
                              indent=2, default=str)
        return format_report(reports, since, until)

    print(asyncio.run(_run()))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from callcore.app import serve
    from callcore.logs import configure_logging

    config = _load(args.config)
    configure_logging(config.logging.format, config.logging.level)
    print(_how_to_call(config), file=sys.stderr)
    return asyncio.run(serve(config))


def cmd_migrate(args: argparse.Namespace) -> int:
    from callcore.app import close_database, open_database
    from callcore.logs import configure_logging
    from callcore.store import create_pool, migrate

    config = _load(args.config)
    configure_logging(config.logging.format, config.logging.level)

    async def _run() -> list[int]:
        db = await open_database(config)
        try:
            pool = await create_pool(db.dsn)
            try:
                return await migrate(pool)
            finally:
                await pool.close()
        finally:
            await close_database(db)

    applied = asyncio.run(_run())
    print(f"applied migrations: {applied}" if applied else "database is up to date")
    return 0


def cmd_asterisk(args: argparse.Namespace) -> int:
    from callcore.sandbox.asterisk import AsteriskSandbox, SandboxError

    try:
        sandbox = AsteriskSandbox.for_node(args.node) if args.node else AsteriskSandbox()
        if args.action == "up":
            print(sandbox.up())
        elif args.action == "down":
            sandbox.down()  # prints its own progress and result
        elif args.action == "status":
            status = sandbox.status()
            print(status)
            return 0 if status.running else 3
        elif args.action == "cli":
            print(sandbox.cli(" ".join(args.command)))
        elif args.action == "build":
            sandbox.build()
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _how_to_call(config: CallcoreConfig) -> str:
    dids = ", ".join(f"{d} → {f}" for d, f in config.inbound.dids.items()) or "(none configured)"
    return (
        "callcore is starting. Inbound numbers: " + dids + "\n"
        "Call it from this machine with sipp (a 20 s call, no digits):\n"
        "  sipp -sn uac -s 1000 -m 1 -d 20000 127.0.0.1:5060\n"
        "or with DTMF (RFC 2833), from the repository: .venv/bin/python -m tests.sip.call 1000 3 1 123456#\n"
        "or with a softphone: SIP server 127.0.0.1:5060 (UDP), no registration, dial 1000.\n"
        "Stop with Ctrl-C (drains live calls first)."
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callcore", description="Call-center server driving Asterisk over ARI."
    )
    parser.add_argument("--version", action="version", version=f"callcore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run callcore in the foreground")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check-config", help="validate a config file; never starts anything")
    p.add_argument("file", nargs="?", default=DEFAULT_CONFIG)
    p.add_argument("--graph", metavar="FLOW", help="print this flow as a tree")
    p.add_argument("--dot", action="store_true", help="with --graph: Graphviz dot instead of a tree")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("reload", help="validate the config, then make the running callcore reload it")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    p.add_argument("--timeout", type=float, default=10.0)
    p.set_defaults(func=cmd_reload)

    p = sub.add_parser("report", help="reports computed from the call events")
    p.add_argument("kind", choices=["ivr", "dialer"])
    p.add_argument("campaign", nargs="?", help="for 'dialer': the campaign (abandonment ledger by window)")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    p.add_argument("--since", help="ISO date/time (default: 24 h ago); UTC unless it has an offset")
    p.add_argument("--until", help="ISO date/time (default: now)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("migrate", help="apply database migrations")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("asterisk", help="the local Asterisk sandbox (Debian sid chroot)")
    p.add_argument("action", choices=["up", "down", "status", "cli", "build"])
    p.add_argument("command", nargs="*", help="for 'cli': an Asterisk CLI command")
    p.add_argument("--node", help="a second sandbox node (asterisk/nodes/<NODE>/, e.g. b): scale-out tests")
    p.set_defaults(func=cmd_asterisk)

    from callcore.api.cli import add_api_parser

    add_api_parser(sub)

    from callcore.api.agent_cli import add_agent_parser

    add_agent_parser(sub, DEFAULT_CONFIG)

    from callcore.leads.cli import add_leads_parser

    add_leads_parser(sub)

    from callcore.ops.cli import add_ops_parsers  # status, retention run, gdpr forget (docs/operations.md)

    add_ops_parsers(sub)

    from callcore.kpi.cli import add_kpi_parsers

    add_kpi_parsers(sub)

    from callcore.dialer.sim_cli import add_sim_parser  # callcore sim dialer (campaign planning)

    add_sim_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
