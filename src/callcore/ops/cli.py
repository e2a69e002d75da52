"""``callcore status``, ``callcore retention run``, ``callcore gdpr forget``.

    callcore status [--json] [--url URL] [--token T]        # the running callcore: API, else state_dir/status.json
    callcore retention run [--dry-run] [--json]             # the retention job (docs/security.md)
    callcore gdpr forget NUMBER [--dry-run] [--region NL] [--skip-recordings] [--yes] [--json]

The config file is ``--config``, else ``$CALLCORE_CONFIG``, else config/callcore.yaml. ``status`` reads the API
with ``--token``, ``$CALLCORE_API_TOKEN`` or ``$CALLCORE_API_TOKEN_FILE`` (a supervisor or admin token) and falls
back to ``state_dir/status.json`` (no token needed: file permissions decide). Exit codes of ``status``: 0 running,
1 running but degraded (an Asterisk node disconnected, draining), 2 usage/config error, 3 not running (or a stale
status file). ``retention`` and ``gdpr``: 0 done, 1 something failed (the report says what), 2 usage/config error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = "config/callcore.yaml"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_RUNNING = 0, 1, 2, 3


def _default_config() -> str:
    return os.environ.get("CALLCORE_CONFIG") or DEFAULT_CONFIG


def add_ops_parsers(sub: Any) -> None:
    """Register ``status``, ``retention`` and ``gdpr`` on the ``callcore`` subparsers."""
    p = sub.add_parser("status", help="the running callcore: Asterisk nodes, live calls, agents, event writer, config")
    p.add_argument("--config", "-c", default=None, help="config file (default: $CALLCORE_CONFIG or "
                                                        "config/callcore.yaml)")
    p.add_argument("--json", action="store_true", help="the status document as JSON")
    p.add_argument("--url", help="the API's base URL (default: from the config's api section)")
    p.add_argument("--token", help="a supervisor/admin API token (default: $CALLCORE_API_TOKEN, "
                                   "$CALLCORE_API_TOKEN_FILE)")
    p.add_argument("--file", type=Path, help="read this status file instead of state_dir/status.json")
    p.add_argument("--timeout", type=float, default=5.0)
    p.set_defaults(func=cmd_status)

    r = sub.add_parser("retention", help="data retention: delete/anonymise data older than the configured limits")
    rsub = r.add_subparsers(dest="retention_command", required=True)
    p = rsub.add_parser("run", help="run the retention job once (a systemd timer runs it daily)")
    p.add_argument("--config", "-c", default=None)
    p.add_argument("--dry-run", action="store_true", help="report what would be deleted/anonymised; change nothing")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_retention_run)

    g = sub.add_parser("gdpr", help="GDPR requests about a caller")
    gsub = g.add_subparsers(dest="gdpr_command", required=True)
    p = gsub.add_parser("forget", help="erase every trace of a phone number (recordings deleted, data anonymised; "
                                       "do-not-call entries kept)")
    p.add_argument("number", help="the number, best in E.164 (+31612345678)")
    p.add_argument("--config", "-c", default=None)
    p.add_argument("--region", help="how to read a number without country code (NL, US, ...); default: the "
                                    "campaigns' default_region when they agree")
    p.add_argument("--dry-run", action="store_true", help="report what would change; change nothing")
    p.add_argument("--skip-recordings", action="store_true",
                   help="anonymise even if recordings cannot be deleted now (they are listed for deletion by hand)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_gdpr_forget)


# ---- status -------------------------------------------------------------------------------------------------


class StatusUnavailable(Exception):
    pass


def lenient_settings(path: Path) -> tuple[Path, str | None]:
    """(state_dir, API base URL or None) from the YAML without validating the rest: ``status`` must work for an
    operator whose shell lacks the service's secrets (CALLCORE_ARI_PASSWORD)."""
    from callcore.config.loader import load_yaml

    data, _ = load_yaml(path)
    data = data if isinstance(data, dict) else {}
    state = Path(str(data.get("state_dir") or "../.state"))
    state_dir = (state if state.is_absolute() else path.parent / state).resolve()
    api = data.get("api") if isinstance(data.get("api"), dict) else {}
    if api.get("enabled", True) is False:
        return state_dir, None
    host = str(api.get("host") or "127.0.0.1")
    port = os.environ.get("CALLCORE_API_PORT") or api.get("port", 8080)
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return state_dir, f"http://{host}:{port}"


def api_token(args: argparse.Namespace) -> str | None:
    from callcore.ops.secrets import read_secret_file

    if args.token:
        return str(args.token)
    if os.environ.get("CALLCORE_API_TOKEN"):
        return os.environ["CALLCORE_API_TOKEN"]
    path = os.environ.get("CALLCORE_API_TOKEN_FILE")
    return read_secret_file(path) if path else None


async def fetch_status(base_url: str, token: str, timeout: float = 5.0) -> dict[str, Any]:
    import aiohttp

    url = base_url.rstrip("/") + "/status"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
                body = await resp.json(content_type=None)
                if resp.status != 200:
                    message = body.get("error", {}).get("message") if isinstance(body, dict) else None
                    raise StatusUnavailable(f"{url} answered {resp.status}: {message or body}")
                if not isinstance(body, dict):
                    raise StatusUnavailable(f"{url}: not a status document")
                return body
    except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError, ValueError) as exc:
        raise StatusUnavailable(f"{url} not reachable: {type(exc).__name__}: {exc}") from None


def cmd_status(args: argparse.Namespace) -> int:
    from callcore.ops.secrets import SecretFileError
    from callcore.ops.status import STATUS_FILE, degraded, file_problem, format_status

    config_path = Path(args.config or _default_config())
    state_dir: Path | None = None
    base_url = args.url
    if args.file is None or base_url is None:
        try:
            state_dir, configured_url = lenient_settings(config_path)
        except Exception as exc:  # noqa: BLE001 - any reason the file is unusable: say it
            if args.file is None and base_url is None:
                print(f"error: cannot read {config_path}: {exc}", file=sys.stderr)
                return EXIT_USAGE
            configured_url = None
        base_url = base_url or configured_url
    try:
        token = api_token(args)
    except SecretFileError as exc:
        print(f"error: CALLCORE_API_TOKEN_FILE: {exc}", file=sys.stderr)
        return EXIT_USAGE
    status: dict[str, Any] | None = None
    notes: list[str] = []
    problem: str | None = None
    source = ""
    if token and base_url:
        try:
            status = asyncio.run(fetch_status(base_url, token, args.timeout))
            source = f"API {base_url}"
        except StatusUnavailable as exc:
            notes.append(str(exc))
    elif base_url:
        notes.append("no API token (--token, CALLCORE_API_TOKEN, CALLCORE_API_TOKEN_FILE): reading the status file")
    if status is None:
        path = args.file or (state_dir / STATUS_FILE if state_dir else None)
        try:
            if path is None:
                raise FileNotFoundError("no status file")
            status = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(status, dict):
                raise ValueError("not a JSON object")
        except FileNotFoundError:
            for note in notes:
                print(f"note: {note}", file=sys.stderr)
            print(f"callcore is not running (no status file at {path})", file=sys.stderr)
            return EXIT_NOT_RUNNING
        except (OSError, ValueError) as exc:
            for note in notes:
                print(f"note: {note}", file=sys.stderr)
            print(f"error: cannot read {path}: {exc}", file=sys.stderr)
            return EXIT_USAGE if isinstance(exc, PermissionError) else EXIT_NOT_RUNNING
        source = str(path)
        problem = file_problem(status)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(json.dumps(status, indent=2) if args.json else format_status(status, source=source))
    if problem:
        print(f"warning: {problem}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    issues = degraded(status)
    for issue in issues:
        print(f"warning: {issue}", file=sys.stderr)
    return EXIT_FAILED if issues else EXIT_OK


# ---- retention and gdpr -------------------------------------------------------------------------------------


def _config(args: argparse.Namespace) -> Any:
    from callcore.cli import _load

    return _load(args.config or _default_config())


def embedded_owner_problem(data_dir: Path) -> str | None:
    """Why this process must not start/adopt the embedded PostgreSQL in ``data_dir`` (None: it may). As root, the
    embedded server would be re-owned by ``callcore-pg`` (see callcore.store.embedded), which breaks a service that
    runs it as its own user (``callcore``)."""
    import pwd

    from callcore.store.embedded import SYSTEM_USER

    if os.geteuid() != 0 or not data_dir.exists():
        return None
    owner = data_dir.stat().st_uid
    if owner == 0:
        return None
    name = pwd.getpwuid(owner).pw_name if owner in {p.pw_uid for p in pwd.getpwall()} else str(owner)
    if name == SYSTEM_USER:
        return None
    return (f"{data_dir} belongs to {name!r}: run this command as that user (`callcore-admin ...` or "
            f"`runuser -u {name} -- callcore ...`), not as root, or the embedded PostgreSQL would be taken over")


@contextlib.asynccontextmanager
async def database(config: Any) -> AsyncIterator[Any]:
    """A migrated pool on the configured database. An embedded server that already runs (the service's) is used
    as it is and left running; one this command had to start is stopped at the end."""
    from callcore.store import EmbeddedPostgres, create_pool, migrate
    from callcore.store.embedded import PORT_FILE

    server = None
    if config.database.url is not None:
        dsn = config.database.url.get_secret_value()
    else:
        data_dir = config.state_dir / "pgdata"
        problem = embedded_owner_problem(data_dir)
        if problem:
            raise SystemExit(f"error: {problem}")
        embedded = EmbeddedPostgres(data_dir)
        port_file = data_dir / PORT_FILE
        if embedded.is_running() and port_file.exists():
            dsn = EmbeddedPostgres(data_dir, port=int(port_file.read_text().strip())).dsn
        else:
            server = embedded
            await asyncio.to_thread(server.start)
            dsn = server.dsn
    try:
        pool = await create_pool(dsn, min_size=1, max_size=4)
        try:
            await migrate(pool)
            yield pool
        finally:
            await pool.close()
    finally:
        if server is not None:
            await asyncio.to_thread(server.stop)


class LazyAriDeleter:
    """The ARI recording deleter, connected on first use (a dry run or a run with nothing to delete needs no
    Asterisk)."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.client: Any = None

    async def delete(self, name: str) -> bool:
        from callcore.ari.client import AriClient
        from callcore.ops.retention import AriRecordingDeleter

        if self.client is None:
            ari = self.config.ari
            self.client = AriClient(ari.url, ari.username, ari.password.get_secret_value(), ari.app,
                                    request_timeout=ari.request_timeout)
        return await AriRecordingDeleter(self.client).delete(name)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()


def _quiet_logging(config: Any) -> None:
    from callcore.logs import configure_logging

    configure_logging(config.logging.format, "warning" if config.logging.level in ("debug", "info") else
                      config.logging.level)


def cmd_retention_run(args: argparse.Namespace) -> int:
    from callcore.ops.retention import load_salt, run_retention
    from callcore.ops.secrets import SecretFileError

    config = _config(args)
    _quiet_logging(config)
    settings = config.retention
    if not settings.enabled:
        print("retention: no limit is configured (retention: in the config); nothing to do")
        return EXIT_OK
    try:
        salt = load_salt(settings, config.state_dir, base=config.source.parent if config.source else None) \
            if settings.personal_data_days is not None else None
    except SecretFileError as exc:
        print(f"error: retention salt: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def run() -> Any:
        deleter = LazyAriDeleter(config)
        try:
            async with database(config) as pool:
                return await run_retention(pool, settings, salt=salt, deleter=deleter,
                                           dry_run=True if args.dry_run else None)
        finally:
            await deleter.close()

    report = asyncio.run(run())
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.format())
    return EXIT_OK if report.ok else EXIT_FAILED


def _region(config: Any, args: argparse.Namespace) -> str | None:
    if args.region:
        return str(args.region).upper()
    regions = {c.default_region for c in config.campaigns.values()}
    return regions.pop() if len(regions) == 1 else None


def cmd_gdpr_forget(args: argparse.Namespace) -> int:
    from callcore.ops.gdpr import ForgetError, forget_number, number_variants
    from callcore.ops.retention import load_salt
    from callcore.ops.secrets import SecretFileError

    config = _config(args)
    _quiet_logging(config)
    region = _region(config, args)
    try:
        e164, _ = number_variants(args.number, region)
    except ForgetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not args.dry_run and not args.yes:
        if not sys.stdin.isatty():
            print("error: erasure cannot be undone: pass --yes (or try --dry-run first)", file=sys.stderr)
            return EXIT_USAGE
        answer = input(f"Erase every trace of {e164 or args.number}? This cannot be undone. Type the number again: ")
        if answer.replace(" ", "") not in (args.number.replace(" ", ""), e164):
            print("not confirmed: nothing changed", file=sys.stderr)
            return EXIT_FAILED
    try:
        salt = load_salt(config.retention, config.state_dir, create=False,
                         base=config.source.parent if config.source else None)
    except SecretFileError as exc:
        print(f"error: retention salt: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def run() -> Any:
        from callcore.store.writer import EventWriter

        deleter = LazyAriDeleter(config)
        try:
            async with database(config) as pool:
                writer = EventWriter(pool, batch_max=500, flush_interval=0.2)
                await writer.start()
                try:
                    return await forget_number(
                        pool, args.number, region=region, salt=salt, deleter=deleter, sink=writer,
                        dry_run=args.dry_run, skip_recordings=args.skip_recordings,
                        personal_variables=config.retention.personal_variables)
                finally:
                    await writer.close()
        finally:
            await deleter.close()

    try:
        report = asyncio.run(run())
    except ForgetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.format())
    return EXIT_OK if report.ok else EXIT_FAILED


__all__ = ["add_ops_parsers", "cmd_gdpr_forget", "cmd_retention_run", "cmd_status", "database", "fetch_status",
           "lenient_settings"]
