"""The writer side of the outbox: rows for the webhooks an event matches, inserted in the events' transaction.

:class:`WebhookOutbox` is the ``outbox`` hook of :class:`~callcore.store.writer.EventWriter`: the writer awaits it
inside the transaction of each batch, after the events themselves, so outbox rows commit (or roll back) with the
events they carry. That is what makes delivery at-least-once without a gap: an event that is stored is queued for
its webhooks, and a batch that fails queues nothing (it is retried whole; the unique ``(webhook, event_id)`` makes
the retry harmless).

All rows of a batch go in with one ``INSERT … SELECT FROM unnest(…)`` inside a savepoint. Should PostgreSQL refuse
that for the content of a row (it cannot happen for an event the store accepted, but a bad row must never cost
anything else), the rows are inserted one by one, each in its own savepoint, and only the refused ones are
skipped, logged at ERROR and counted. Connection trouble is raised to the writer, which retries the batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from callcore.events import AgentEvent, CallEvent
from callcore.store.writer import is_data_error
from callcore.webhooks.config import WebhookConfig
from callcore.webhooks.payload import Matcher, encode, event_body, public_type

log = structlog.get_logger("callcore.webhooks")

# Rows in commit order (bigserial id follows the ordinality of the arrays); a (webhook, event) already queued is
# skipped: a writer batch retried after an unknown commit outcome queues nothing twice.
INSERT_OUTBOX_SQL = """
INSERT INTO webhook_outbox (webhook, event_id, event_type, payload)
SELECT r.webhook, r.event_id, r.event_type, r.payload::jsonb
FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[]) WITH ORDINALITY AS r(webhook, event_id, event_type, payload, ord)
ORDER BY r.ord
ON CONFLICT (webhook, event_id) DO NOTHING
"""

Row = tuple[str, Any, str, str]  # webhook, event_id, public type, JSON body


@dataclass
class OutboxStats:
    rows: int = 0  # rows handed to PostgreSQL (duplicates of a retried batch included)
    skipped: int = 0  # rows that could not be encoded or were refused by PostgreSQL (logged)


class WebhookOutbox:
    """``await outbox(conn, events)`` inside the writer's transaction. Enabled webhooks only: a disabled one
    gets no rows while it is disabled."""

    def __init__(self, webhooks: Iterable[WebhookConfig]) -> None:
        self.targets = [(w.name, Matcher(w.events)) for w in webhooks if w.enabled]
        self.stats = OutboxStats()

    @classmethod
    def for_config(cls, webhooks: Iterable[WebhookConfig]) -> WebhookOutbox | None:
        """The hook, or None when no webhook is enabled (then the writer has nothing extra to do)."""
        outbox = cls(webhooks)
        return outbox if outbox.targets else None

    def rows(self, events: Sequence[CallEvent | AgentEvent]) -> list[Row]:
        """One row per (event, matching webhook), in event order. An event whose body cannot be encoded is
        skipped (logged): the store refuses such events anyway, so this is a safety net."""
        rows: list[Row] = []
        for event in events:
            name = public_type(event)
            targets = [w for w, matches in self.targets if matches(name)]
            if not targets:
                continue
            try:
                body = encode(event_body(event))
            except (ValueError, TypeError) as exc:
                self.stats.skipped += len(targets)
                log.error("webhook_outbox.unencodable_event", event_id=str(event.event_id), event_type=name,
                          webhooks=targets, error=f"{type(exc).__name__}: {exc}")
                continue
            rows.extend((w, event.event_id, name, body) for w in targets)
        return rows

    async def __call__(self, conn: Any, events: Sequence[CallEvent | AgentEvent]) -> None:
        rows = self.rows(events)
        if not rows:
            return
        try:
            async with conn.transaction():  # a savepoint: a refused row must not abort the batch's transaction
                await conn.execute(INSERT_OUTBOX_SQL, *_columns(rows))
        except Exception as exc:
            if not is_data_error(exc):
                raise  # connection trouble & co: the writer retries the whole batch
            log.warning("webhook_outbox.bulk_insert_refused", rows=len(rows), error=f"{type(exc).__name__}: {exc}")
            await self._one_by_one(conn, rows)
            return
        self.stats.rows += len(rows)

    async def _one_by_one(self, conn: Any, rows: list[Row]) -> None:
        for row in rows:
            try:
                async with conn.transaction():
                    await conn.execute(INSERT_OUTBOX_SQL, *_columns([row]))
            except Exception as exc:
                if not is_data_error(exc):
                    raise
                self.stats.skipped += 1
                log.error("webhook_outbox.row_refused", webhook=row[0], event_id=str(row[1]), event_type=row[2],
                          error=f"{type(exc).__name__}: {exc}", body=row[3][:2000])
            else:
                self.stats.rows += 1


def _columns(rows: Sequence[Row]) -> tuple[list[Any], ...]:
    return ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows])


def decode_payload(value: Any) -> Any:
    """A ``payload`` column as fetched: a dict with callcore's pool codecs, JSON text without them."""
    return json.loads(value) if isinstance(value, str) else value


__all__ = ["INSERT_OUTBOX_SQL", "OutboxStats", "WebhookOutbox", "decode_payload"]
