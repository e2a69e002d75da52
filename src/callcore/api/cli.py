"""``callcore api ...``: the OpenAPI document and API tokens.

    callcore api openapi                                  # the OpenAPI 3.1 document (docs/openapi.json)
    callcore api token create NAME --role R [--agent ID]  # prints the token once; stores its SHA-256
    callcore api token list [--all]
    callcore api token revoke NAME|ID
    callcore api token generate [NAME --role R ...]       # a token + the YAML line for api.tokens (no database)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import contextlib
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from callcore.api.auth import PgTokens, Role, check_binding, generate_token, hash_token

T = TypeVar("T")
# `callcore-admin` (deploy/install.sh) sets $CALLCORE_CONFIG to the installed file for every command.
DEFAULT_CONFIG = os.environ.get("CALLCORE_CONFIG") or "config/callcore.yaml"
ROLES = [r.value for r in Role]


def add_api_parser(subparsers: Any) -> None:
    api = subparsers.add_parser("api", help="the HTTP API: OpenAPI document, tokens")
    sub = api.add_subparsers(dest="api_command", required=True)

    p = sub.add_parser("openapi", help="print the OpenAPI 3.1 document (callcore api openapi > docs/openapi.json)")
    p.set_defaults(func=cmd_openapi)

    token = sub.add_parser("token", help="API bearer tokens stored (hashed) in PostgreSQL")
    tsub = token.add_subparsers(dest="token_command", required=True)

    p = tsub.add_parser("create", help="create a token; it is printed once, only its SHA-256 is stored")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--agent", help="agent tokens: the agent id the token acts for")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    p.set_defaults(func=cmd_token_create)

    p = tsub.add_parser("list", help="list tokens (database and config); never shows tokens")
    p.add_argument("--all", action="store_true", help="include revoked tokens")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    p.set_defaults(func=cmd_token_list)

    p = tsub.add_parser("revoke", help="revoke a database token by name or id")
    p.add_argument("token", metavar="NAME|ID")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG)
    p.set_defaults(func=cmd_token_revoke)

    p = tsub.add_parser("generate", help="print a new token and its api.tokens YAML entry (stores nothing)")
    p.add_argument("name", nargs="?", default="NAME")
    p.add_argument("--role", default="integrator", choices=ROLES)
    p.add_argument("--agent")
    p.set_defaults(func=cmd_token_generate)


def cmd_openapi(args: argparse.Namespace) -> int:
    from callcore.api.openapi import build_openapi, render
    from callcore.api.server import api_routes

    sys.stdout.write(render(build_openapi(api_routes().routes)))
    return 0


def _with_tokens(config_path: str, work: Callable[[PgTokens], Awaitable[T]]) -> T:
    """Run ``work`` with the token table of the configured database (migrated first)."""
    from callcore.app import close_database, open_database
    from callcore.cli import _load
    from callcore.store import create_pool, migrate

    config = _load(config_path)

    async def run() -> T:
        db = await open_database(config)
        try:
            pool = await create_pool(db.dsn, min_size=1, max_size=2)
            try:
                await migrate(pool)
                return await work(PgTokens(pool, cache_seconds=0))
            finally:
                await pool.close()
        finally:
            await close_database(db)

    # stdout is for the command's answer (a token, a table): log lines of the database work go to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        return asyncio.run(run())


def cmd_token_create(args: argparse.Namespace) -> int:
    import asyncpg

    from callcore.cli import _load

    try:
        check_binding(args.role, args.agent)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    config = _load(args.config)
    if args.agent is not None and args.agent not in config.agents:
        print(f"error: no agent {args.agent!r} in {args.config}", file=sys.stderr)
        return 2
    if any(t.name == args.name for t in config.api.tokens):
        print(f"error: the config already has a token named {args.name!r}", file=sys.stderr)
        return 2
    try:
        token, row = _with_tokens(args.config, lambda store: store.create(args.name, args.role, args.agent))
    except asyncpg.UniqueViolationError:
        print(f"error: a live token named {args.name!r} exists (revoke it first)", file=sys.stderr)
        return 1
    bound = f" for agent {row.agent_id}" if row.agent_id else ""
    print(f"created token {row.name!r} (id {row.id}, role {row.role}{bound}). It is shown only now: store it.",
          file=sys.stderr)
    print(token)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    from callcore.cli import _load

    config = _load(args.config)
    rows = _with_tokens(args.config, lambda store: store.list_tokens(include_revoked=args.all))
    lines = [("ID", "NAME", "ROLE", "AGENT", "SOURCE", "CREATED", "REVOKED")]
    for t in config.api.tokens:
        lines.append(("-", t.name, t.role.value, t.agent or "", "config", "", ""))
    for r in rows:
        lines.append((str(r.id), r.name, r.role, r.agent_id or "", "database", f"{r.created_at:%Y-%m-%d %H:%M}",
                      f"{r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else ""))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from callcore.cli import _load

    config = _load(args.config)
    if any(t.name == args.token for t in config.api.tokens):
        print(f"error: {args.token!r} is a config token: remove it from api.tokens in {args.config} and reload",
              file=sys.stderr)
        return 1
    rows = _with_tokens(args.config, lambda store: store.revoke(args.token))
    if not rows:
        print(f"error: no live token named (or with id) {args.token!r}", file=sys.stderr)
        return 1
    for r in rows:
        print(f"revoked token {r.name!r} (id {r.id}); running callcore stops accepting it within seconds")
    return 0


def cmd_token_generate(args: argparse.Namespace) -> int:
    try:
        check_binding(args.role, args.agent)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    token = generate_token()
    agent = f", agent: {args.agent}" if args.agent else ""
    print("token (give it to the client; it is not stored anywhere):", file=sys.stderr, flush=True)
    print(token, flush=True)
    print("add under api.tokens in the config:", file=sys.stderr, flush=True)
    print(f"    - {{name: {args.name}, role: {args.role}{agent}, sha256: {hash_token(token)}}}")
    return 0


__all__ = ["add_api_parser"]
