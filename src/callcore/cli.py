"""The ``callcore`` command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from callcore import __version__
from callcore.config import CallcoreConfig, ConfigError, load_config

DEFAULT_CONFIG = "config/callcore.yaml"


def _known_flows() -> set[str]:
    from callcore.ivr.registry import FLOWS

    return set(FLOWS)


def _load(path: str) -> CallcoreConfig:
    try:
        return load_config(Path(path), known_flows=_known_flows())
    except ConfigError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(Path(args.file), known_flows=_known_flows())
    except ConfigError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        print(f"{args.file}: {len(exc.issues)} error(s)", file=sys.stderr)
        return 1
    print(f"{args.file}: OK (version {config.version})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from callcore.app import serve
    from callcore.logs import configure_logging

    config = _load(args.config)
    configure_logging(config.logging.format, config.logging.level)
    print(_how_to_call(config), file=sys.stderr)
    return asyncio.run(serve(config))


def cmd_migrate(args: argparse.Namespace) -> int:
    from callcore.app import open_database
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
            if db.embedded is not None:
                await asyncio.to_thread(db.embedded.stop)

    applied = asyncio.run(_run())
    print(f"applied migrations: {applied}" if applied else "database is up to date")
    return 0


def cmd_asterisk(args: argparse.Namespace) -> int:
    from callcore.sandbox.asterisk import AsteriskSandbox, SandboxError

    sandbox = AsteriskSandbox()
    try:
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
        "Call it from this machine with sipp (RFC 2833 DTMF, hangs up after 10 s):\n"
        "  sipp -sn uac -s 1000 -m 1 -d 10000 127.0.0.1:5060\n"
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
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("migrate", help="apply database migrations")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("asterisk", help="the local Asterisk sandbox (Debian sid chroot)")
    p.add_argument("action", choices=["up", "down", "status", "cli", "build"])
    p.add_argument("command", nargs="*", help="for 'cli': an Asterisk CLI command")
    p.set_defaults(func=cmd_asterisk)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
