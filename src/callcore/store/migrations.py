"""Numbered SQL migrations (``sql/NNNN_name.sql``), applied in order, once each.

Each file runs inside its own transaction together with its row in ``schema_migrations(version, name,
applied_at, checksum)``. The whole run holds a PostgreSQL advisory lock, so two callcore instances starting
together apply each migration exactly once (the second waits, then finds nothing to do). A file that was
already applied but whose content changed since (different SHA-256) is an error: migrations are immutable once
applied; write a new numbered file instead.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog

log = structlog.get_logger("callcore.store")

# pg_advisory_lock key: the ASCII bytes of "callcore" as a bigint.
ADVISORY_LOCK_KEY = int.from_bytes(b"callcore", "big")
_FILE_RE = re.compile(r"^(\d+)_([A-Za-z0-9_\-]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    checksum   text        NOT NULL
)
"""


class MigrationError(RuntimeError):
    """A migration could not be applied, or the applied history does not match the files."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    sql: str
    checksum: str


def default_migrations_dir() -> Path:
    """``$CALLCORE_MIGRATIONS_DIR`` if set, else the repository's ``sql/`` (src/callcore/store → ../../../sql)."""
    env = os.environ.get("CALLCORE_MIGRATIONS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "sql"


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """The migration files of ``directory`` sorted by version (files not named ``NNNN_name.sql`` are ignored)."""
    directory = Path(directory) if directory is not None else default_migrations_dir()
    if not directory.is_dir():
        raise MigrationError(f"migrations directory {directory} does not exist")
    found: dict[int, Migration] = {}
    for path in sorted(directory.iterdir()):
        m = _FILE_RE.match(path.name)
        if not m:
            continue
        data = path.read_bytes()
        mig = Migration(
            version=int(m.group(1)), name=m.group(2), path=path, sql=data.decode("utf-8"),
            checksum=hashlib.sha256(data).hexdigest(),
        )
        if mig.version in found:
            raise MigrationError(f"two migrations have version {mig.version}: {found[mig.version].path.name}, {path.name}")
        found[mig.version] = mig
    return [found[v] for v in sorted(found)]


async def migrate(
    target: str | asyncpg.Pool | asyncpg.Connection, directory: Path | None = None
) -> list[int]:
    """Apply the pending migrations of ``directory`` (default: :func:`default_migrations_dir`) to the database
    ``target`` (a DSN, a pool or a connection). Returns the versions applied by this call, in order."""
    migrations = load_migrations(directory)
    if isinstance(target, str):
        conn = await asyncpg.connect(target)
        try:
            return await _migrate_conn(conn, migrations)
        finally:
            await conn.close()
    if isinstance(target, asyncpg.Pool):
        async with target.acquire() as conn:
            return await _migrate_conn(conn, migrations)
    return await _migrate_conn(target, migrations)


async def applied_migrations(conn: asyncpg.Connection) -> dict[int, asyncpg.Record]:
    rows = await conn.fetch("SELECT version, name, applied_at, checksum FROM schema_migrations ORDER BY version")
    return {r["version"]: r for r in rows}


async def _migrate_conn(conn: asyncpg.Connection, migrations: list[Migration]) -> list[int]:
    await conn.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE)
        applied = await applied_migrations(conn)
        on_disk = {m.version for m in migrations}
        for version, row in applied.items():
            if version not in on_disk:
                log.warning("migrations.unknown_applied", version=version, name=row["name"])
        for mig in migrations:
            row = applied.get(mig.version)
            if row is not None and row["checksum"] != mig.checksum:
                raise MigrationError(
                    f"migration {mig.path.name} was applied on {row['applied_at']:%Y-%m-%d %H:%M:%S%z} with checksum "
                    f"{row['checksum'][:12]}… but the file now has checksum {mig.checksum[:12]}…: applied migrations "
                    f"must not change; restore the file and add a new numbered migration instead"
                )
        done: list[int] = []
        for mig in migrations:
            if mig.version in applied:
                continue
            try:
                async with conn.transaction():
                    await conn.execute(mig.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                        mig.version, mig.name, mig.checksum,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"migration {mig.path.name} failed: {type(exc).__name__}: {exc}") from exc
            log.info("migrations.applied", version=mig.version, name=mig.name)
            done.append(mig.version)
        return done
    finally:
        if not conn.is_closed():
            await conn.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
