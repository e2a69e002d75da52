"""`callcore agent …`: an agent's buttons from the shell, through the running callcore's HTTP API.

    callcore agent login agent01 [--paused]      callcore agent pause agent01 --reason lunch
    callcore agent ready agent01                 callcore agent end-wrap-up agent01
    callcore agent logout agent01                callcore agent show agent01 | callcore agent list

The token comes from ``--token`` or ``CALLCORE_API_TOKEN`` (an agent token may only press its own agent's
buttons); the address from ``--url`` or the config's ``api`` section. Exit codes: 0 done, 1 refused (the
API's message is printed, e.g. an agent on a call cannot pause), 2 unreachable or not authorised.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import aiohttp

ACTIONS = {"login": "login", "logout": "logout", "ready": "ready", "pause": "pause", "end-wrap-up": "wrap-up/end"}


def add_agent_parser(subparsers: Any, default_config: str) -> None:
    p = subparsers.add_parser("agent", help="agent login/logout/ready/pause through the running callcore's API")
    p.add_argument("action", choices=[*ACTIONS, "show", "list"])
    p.add_argument("agent", nargs="?", help="the agent id (not for 'list')")
    p.add_argument("--reason", help="for 'pause': why (break, lunch, training…)")
    p.add_argument("--paused", action="store_true", help="for 'login': start paused")
    p.add_argument("--url", help="the API's base URL (default: from the config's api section)")
    p.add_argument("--token", help="bearer token (default: $CALLCORE_API_TOKEN)")
    p.add_argument("--config", "-c", default=default_config)
    p.set_defaults(func=cmd_agent)


def _base_url(args: argparse.Namespace) -> str:
    if args.url:
        return args.url.rstrip("/")
    from callcore.config import load_config

    api = load_config(args.config).api
    host = f"[{api.host}]" if ":" in api.host else api.host
    return f"http://{host}:{api.port}"


def cmd_agent(args: argparse.Namespace) -> int:
    if args.action != "list" and not args.agent:
        print(f"callcore agent {args.action}: which agent?", file=sys.stderr)
        return 2
    token = args.token or os.environ.get("CALLCORE_API_TOKEN")
    if not token:
        print("no API token: pass --token or set CALLCORE_API_TOKEN", file=sys.stderr)
        return 2
    try:
        base = _base_url(args)
    except Exception as exc:  # noqa: BLE001 - a config problem: say it, do nothing
        print(f"cannot read the API address from {args.config}: {exc}", file=sys.stderr)
        return 2
    if args.action == "list":
        method, path, body = "GET", "/agents?limit=500", None
    elif args.action == "show":
        method, path, body = "GET", f"/agents/{args.agent}", None
    else:
        method, path = "POST", f"/agents/{args.agent}/{ACTIONS[args.action]}"
        body = {"reason": args.reason or "break"} if args.action == "pause" else (
            {"paused": True} if args.action == "login" and args.paused else {})
    return asyncio.run(_request(method, base + path, token, body))


async def _request(method: str, url: str, token: str, body: dict[str, Any] | None) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
            async with session.request(method, url, json=body, headers=headers) as resp:
                data = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
        print(f"callcore API not reachable at {url}: {exc}", file=sys.stderr)
        return 2
    if resp.status >= 400:
        error = data.get("error", {}) if isinstance(data, dict) else {}
        print(f"{resp.status} {error.get('code', '')}: {error.get('message', data)}", file=sys.stderr)
        return 2 if resp.status in (401, 403) else 1
    if isinstance(data, dict) and "items" in data:
        for agent in data["items"]:
            print(_line(agent))
    else:
        print(_line(data))
    return 0


def _line(agent: dict[str, Any]) -> str:
    state = agent.get("state", "?")
    if agent.get("pause_reason"):
        state += f" ({agent['pause_reason']})"
    return f"{agent.get('id', '?'):<12} {state}"
