"""PostgreSQL event store: embedded server manager, pool, migrations, the one event writer, read queries."""

from callcore.store.embedded import EmbeddedPostgres, EmbeddedPostgresError
from callcore.store.migrations import MigrationError, default_migrations_dir, migrate
from callcore.store.pool import create_pool
from callcore.store.projection import VARIABLES_SET
from callcore.store.queries import call_events_for, call_row, count_calls, count_events
from callcore.store.writer import EventWriter, WriterStats

__all__ = [
    "VARIABLES_SET",
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "EventWriter",
    "MigrationError",
    "WriterStats",
    "call_events_for",
    "call_row",
    "count_calls",
    "count_events",
    "create_pool",
    "default_migrations_dir",
    "migrate",
]
