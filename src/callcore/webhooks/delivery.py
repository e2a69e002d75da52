"""The sending side of the outbox: :class:`Deliverer` POSTs due ``webhook_outbox`` rows to their webhooks.

One task per enabled webhook, so a slow or dead receiver never delays another. Each round:

1. **claim** up to ``concurrency`` due rows of the webhook in one statement: ``UPDATE … FROM (SELECT … FOR UPDATE
   SKIP LOCKED)`` counts the attempt and moves ``next_attempt_at`` to the end of a *lease* (the attempt's timeout
   plus a margin). No transaction stays open during HTTP; two deliverers (two processes) never take the same row;
   a row whose attempt was cut short by a crash is due again when its lease ends;
2. **send** them concurrently: a JSON POST with the signature headers of :mod:`callcore.webhooks.signing`, a total
   timeout per attempt, no redirects followed;
3. **record** each outcome: a 2xx marks the row delivered (only then: at-least-once); anything else (status,
   timeout, connection error) schedules the next attempt after a capped exponential backoff with jitter (a
   ``Retry-After`` of a 429/503 is honoured up to the cap), or, after ``max_attempts``, gives the row up
   (``failed_at``, kept with its last error, logged at ERROR and counted).

A round that found rows is followed by the next at once; otherwise the task sleeps ``poll_interval`` or until
:meth:`Deliverer.notify` (wire it to the writer's ``on_commit``). A round in which every attempt failed pauses the
webhook with the same capped backoff (per consecutive failed round): a receiver that is down is probed with a few
requests, not flooded with the retries of its whole backlog, and its rows do not use up their attempts meanwhile. A housekeeping task refreshes the backlog figures
for metrics and purges delivered and given-up rows after their retention. :meth:`Deliverer.close` is bounded.

Ordering: first attempts of one webhook start in commit order; with ``concurrency: 1`` and a receiver that answers
2xx, events arrive in commit order. A retry is sent after newer events, so receivers that care order by ``at``
(and de-duplicate by ``event_id``): see docs/webhooks.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from callcore import __version__
from callcore.webhooks.config import WebhookConfig
from callcore.webhooks.outbox import WebhookOutbox, decode_payload
from callcore.webhooks.payload import encode
from callcore.webhooks.signing import (
    ATTEMPT_HEADER,
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WEBHOOK_HEADER,
    signature,
)

log = structlog.get_logger("callcore.webhooks")

CLAIM_SQL = """
UPDATE webhook_outbox AS o
SET attempts = o.attempts + 1, next_attempt_at = now() + make_interval(secs => $3)
FROM (
    SELECT id FROM webhook_outbox
    WHERE webhook = $1 AND delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
    ORDER BY next_attempt_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
) AS due
WHERE o.id = due.id
RETURNING o.id, o.event_id, o.event_type, o.payload, o.attempts
"""
DELIVERED_SQL = "UPDATE webhook_outbox SET delivered_at = now(), last_status = $2, last_error = NULL WHERE id = $1"
RETRY_SQL = """
UPDATE webhook_outbox SET next_attempt_at = now() + make_interval(secs => $2), last_status = $3, last_error = $4
WHERE id = $1
"""
GAVE_UP_SQL = "UPDATE webhook_outbox SET failed_at = now(), last_status = $2, last_error = $3 WHERE id = $1"
BACKLOG_SQL = """
SELECT webhook, count(*) AS pending, extract(epoch FROM now() - min(created_at))::float8 AS oldest
FROM webhook_outbox WHERE delivered_at IS NULL AND failed_at IS NULL GROUP BY webhook
"""
PURGE_SQL = """
DELETE FROM webhook_outbox WHERE id IN (
    SELECT id FROM webhook_outbox WHERE {column} < now() - make_interval(secs => $1) LIMIT $2)
"""

LEASE_MARGIN = 30.0  # seconds a claimed row stays leased beyond its attempt's timeout
ERROR_TEXT_MAX = 500
RESPONSE_SNIPPET = 512


def backoff_delay(attempts: int, initial: float, maximum: float, *, rng: random.Random | None = None,
                  retry_after: float | None = None) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: ``initial * 2**(attempts-1)`` capped at
    ``maximum``, then "equal jitter" (a random point in its upper half), and never less than a receiver's
    ``Retry-After`` (itself capped at ``maximum``)."""
    base = min(maximum, initial * 2.0 ** max(0, min(attempts - 1, 62)))
    delay = base / 2 + (rng or random).uniform(0, base / 2)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(retry_after, maximum))
    return delay


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None  # an HTTP date: not worth the parsing; the backoff applies


@dataclass
class WebhookStats:
    """Counters of one webhook since start (for metrics)."""

    delivered: int = 0
    retried: int = 0  # failed attempts with another one scheduled
    gave_up: int = 0
    record_errors: int = 0  # outcomes that could not be written (the row is sent again after its lease)
    pending: int = 0  # rows waiting (housekeeping's last count)
    oldest_pending_seconds: float = 0.0
    last_error: str | None = None


class _Target:
    def __init__(self, config: WebhookConfig) -> None:
        self.config = config
        self.name = config.name
        self.secret = config.secret()
        self.stats = WebhookStats()
        self.wake = asyncio.Event()
        self.failed_rounds = 0  # consecutive rounds in which every attempt failed


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None
    error: str | None
    retry_after: float | None = None


class Deliverer:
    """Sends the outbox of every enabled webhook. ``db``: an asyncpg pool (or anything with ``fetch``/``execute``).

    The secrets are read from the environment when it is built (a missing one raises ``KeyError``)."""

    def __init__(
        self,
        db: Any,
        webhooks: Iterable[WebhookConfig],
        *,
        poll_interval: float = 1.0,
        housekeeping_interval: float = 10.0,
        purge_interval: float = 3600.0,
        keep_delivered: timedelta = timedelta(days=7),
        keep_failed: timedelta = timedelta(days=30),
        db_retry: float = 1.0,
        session: aiohttp.ClientSession | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.targets = {w.name: _Target(w) for w in webhooks if w.enabled}
        self.poll_interval = poll_interval
        self.housekeeping_interval = housekeeping_interval
        self.purge_interval = purge_interval
        self.keep_delivered = keep_delivered
        self.keep_failed = keep_failed
        self.db_retry = db_retry
        self._session = session
        self._own_session = session is None
        self._rng = rng or random.Random()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._last_purge = 0.0
        self.orphaned: dict[str, int] = {}  # pending rows of webhooks not (or no longer) enabled

    # ---- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._tasks:
            return
        self._stopping.clear()
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": f"callcore-webhooks/{__version__}"},
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=64),
            )
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run(t), name=f"webhook-{t.name}") for t in self.targets.values()]
        self._tasks.append(loop.create_task(self._housekeeping(), name="webhook-housekeeping"))
        log.info("webhook delivery started", webhooks=sorted(self.targets))

    def notify(self, *_: object) -> None:
        """New rows may be due (e.g. the writer committed a batch): look now instead of at the next poll.
        Fits the writer's ``on_commit`` hook."""
        for t in self.targets.values():
            t.wake.set()

    async def close(self, timeout: float = 5.0) -> None:
        """Stop: attempts under way get up to ``timeout`` seconds to finish and be recorded, then are cancelled
        (their rows are sent again after their lease). Returns within about ``timeout`` seconds."""
        self._stopping.set()
        self.notify()
        tasks, self._tasks = self._tasks, []
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
                log.warning("webhook deliveries cut short at shutdown; they are sent again after their lease",
                            tasks=len(pending))
        if self._own_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    @property
    def stats(self) -> dict[str, WebhookStats]:
        return {name: t.stats for name, t in self.targets.items()}

    # ---- one webhook ------------------------------------------------------------------------------------------

    async def _run(self, target: _Target) -> None:
        batch = target.config.concurrency
        while not self._stopping.is_set():
            try:
                rows = await self.db.fetch(CLAIM_SQL, target.name, batch, target.config.timeout + LEASE_MARGIN)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: try again later, rows stay where they are
                log.error("webhook claim failed", webhook=target.name, error=f"{type(exc).__name__}: {exc}")
                await self._sleep(target, self.db_retry)
                continue
            if rows:
                rows = sorted(rows, key=lambda r: r["id"])
                results = await asyncio.gather(*(self._attempt(target, row) for row in rows), return_exceptions=True)
                for result in results:
                    if isinstance(result, BaseException):  # a bug: the row is sent again after its lease
                        log.error("webhook attempt failed unexpectedly", webhook=target.name,
                                  error=f"{type(result).__name__}: {result}", exc_info=result)
                if any(result is True for result in results):
                    target.failed_rounds = 0
                else:
                    target.failed_rounds += 1
                    cfg = target.config
                    pause = backoff_delay(target.failed_rounds, cfg.backoff_initial, cfg.backoff_max, rng=self._rng)
                    log.warning("webhook receiver failing; pausing it", webhook=target.name,
                                failed_rounds=target.failed_rounds, pause=round(pause, 3),
                                last_error=target.stats.last_error)
                    await self._pause(pause)
                    continue
                if len(rows) == batch:
                    continue  # more may be due
            await self._sleep(target, self.poll_interval)

    async def _sleep(self, target: _Target, seconds: float) -> None:
        if self._stopping.is_set():
            return
        try:
            await asyncio.wait_for(target.wake.wait(), seconds)
        except TimeoutError:
            pass
        target.wake.clear()

    async def _pause(self, seconds: float) -> None:
        """Sleep (new rows do not end it; stopping does)."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    async def _attempt(self, target: _Target, row: Any) -> bool:
        """One attempt of ``row``: sent, then recorded. True when the receiver took it."""
        outcome = await self._send(target, row)
        await self._record(target, row, outcome)
        return outcome.ok

    async def _send(self, target: _Target, row: Any) -> Outcome:
        """One POST of ``row`` (never raises for the receiver's or the network's trouble)."""
        assert self._session is not None, "start() first"
        cfg = target.config
        body = encode(decode_payload(row["payload"])).encode("utf-8")
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: str(row["event_id"]),
            EVENT_TYPE_HEADER: row["event_type"],
            WEBHOOK_HEADER: target.name,
            ATTEMPT_HEADER: str(row["attempts"]),
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature(target.secret, timestamp, body),
        }
        try:
            async with self._session.post(cfg.url, data=body, headers=headers, allow_redirects=False,
                                          timeout=aiohttp.ClientTimeout(total=cfg.timeout)) as resp:
                if 200 <= resp.status < 300:  # delivered, whatever happens to the rest of the answer
                    with contextlib.suppress(Exception):
                        await resp.content.read(RESPONSE_SNIPPET)  # a short body read lets the connection be reused
                    return Outcome(True, resp.status, None)
                snippet = await resp.content.read(RESPONSE_SNIPPET)
                text = snippet.decode("utf-8", "replace").strip()
                return Outcome(False, resp.status, f"HTTP {resp.status}" + (f": {text}" if text else ""),
                               _retry_after(resp.headers.get("Retry-After")) if resp.status in (429, 503) else None)
        except TimeoutError:
            return Outcome(False, None, f"no answer within {cfg.timeout:g} s")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return Outcome(False, None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)

    async def _record(self, target: _Target, row: Any, outcome: Outcome) -> None:
        cfg, stats, attempts = target.config, target.stats, row["attempts"]
        error = outcome.error[:ERROR_TEXT_MAX] if outcome.error else None
        try:
            if outcome.ok:
                await self.db.execute(DELIVERED_SQL, row["id"], outcome.status)
                stats.delivered += 1
            elif attempts >= cfg.max_attempts:
                await self.db.execute(GAVE_UP_SQL, row["id"], outcome.status, error)
                stats.gave_up += 1
                stats.last_error = error
                log.error("webhook delivery given up", webhook=target.name, event_id=str(row["event_id"]),
                          event_type=row["event_type"], attempts=attempts, error=error)
            else:
                delay = backoff_delay(attempts, cfg.backoff_initial, cfg.backoff_max, rng=self._rng,
                                      retry_after=outcome.retry_after)
                await self.db.execute(RETRY_SQL, row["id"], delay, outcome.status, error)
                stats.retried += 1
                stats.last_error = error
                log.warning("webhook delivery failed; will retry", webhook=target.name, event_id=str(row["event_id"]),
                            attempt=attempts, retry_in=round(delay, 3), error=error)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the row keeps its lease and is attempted again when it ends
            stats.record_errors += 1
            log.error("webhook outcome not recorded; the event will be sent again", webhook=target.name,
                      event_id=str(row["event_id"]), delivered=outcome.ok, error=f"{type(exc).__name__}: {exc}")

    # ---- housekeeping -----------------------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.refresh_backlog()
                if time.monotonic() - self._last_purge >= self.purge_interval:
                    self._last_purge = time.monotonic()
                    await self.purge()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("webhook housekeeping failed", error=f"{type(exc).__name__}: {exc}")
            try:
                await asyncio.wait_for(self._stopping.wait(), self.housekeeping_interval)
            except TimeoutError:
                pass

    async def refresh_backlog(self) -> None:
        """Pending rows per webhook (for metrics); rows of unknown or disabled webhooks are logged once."""
        counts = {r["webhook"]: (r["pending"], r["oldest"]) for r in await self.db.fetch(BACKLOG_SQL)}
        for name, t in self.targets.items():
            t.stats.pending, t.stats.oldest_pending_seconds = counts.get(name, (0, 0.0))
        orphaned = {name: n for name, (n, _) in counts.items() if name not in self.targets}
        for name, n in orphaned.items():
            if name not in self.orphaned:
                log.warning("webhook rows wait for a webhook that is not enabled; they are kept, not sent",
                            webhook=name, pending=n)
        self.orphaned = orphaned

    async def purge(self, batch: int = 5000) -> int:
        """Delete delivered rows older than ``keep_delivered`` and given-up ones older than ``keep_failed``."""
        removed = 0
        for column, keep in (("delivered_at", self.keep_delivered), ("failed_at", self.keep_failed)):
            while not self._stopping.is_set():
                status = await self.db.execute(PURGE_SQL.format(column=column), keep.total_seconds(), batch)
                n = int(status.split()[-1]) if status.startswith("DELETE") else 0
                removed += n
                if n < batch:
                    break
        if removed:
            log.info("webhook outbox purged", rows=removed)
        return removed

    # ---- metrics ----------------------------------------------------------------------------------------------

    def metrics_collector(self, outbox: WebhookOutbox | None = None) -> Collector:
        """A Prometheus collector (``registry.register(deliverer.metrics_collector(outbox))``)."""
        return WebhookCollector(self, outbox)


class WebhookCollector(Collector):
    """``callcore_webhook_deliveries_total{webhook,outcome}`` (delivered | retry | gave_up),
    ``callcore_webhook_pending{webhook}``, ``callcore_webhook_oldest_pending_seconds{webhook}`` and
    ``callcore_webhook_outbox_rows_skipped_total``."""

    def __init__(self, deliverer: Deliverer, outbox: WebhookOutbox | None = None) -> None:
        self.deliverer = deliverer
        self.outbox = outbox

    def collect(self) -> Iterable[Any]:
        deliveries = CounterMetricFamily("callcore_webhook_deliveries", "Webhook delivery attempts by outcome",
                                         labels=["webhook", "outcome"])
        pending = GaugeMetricFamily("callcore_webhook_pending", "Outbox rows waiting to be delivered",
                                    labels=["webhook"])
        oldest = GaugeMetricFamily("callcore_webhook_oldest_pending_seconds",
                                   "Age of the oldest outbox row waiting to be delivered", labels=["webhook"])
        for name, s in sorted(self.deliverer.stats.items()):
            deliveries.add_metric([name, "delivered"], s.delivered)
            deliveries.add_metric([name, "retry"], s.retried)
            deliveries.add_metric([name, "gave_up"], s.gave_up)
            pending.add_metric([name], s.pending)
            oldest.add_metric([name], s.oldest_pending_seconds)
        skipped = CounterMetricFamily("callcore_webhook_outbox_rows_skipped",
                                      "Outbox rows that could not be written (logged)")
        skipped.add_metric([], self.outbox.stats.skipped if self.outbox is not None else 0)
        return [deliveries, pending, oldest, skipped]


__all__ = ["Deliverer", "Outcome", "WebhookCollector", "WebhookStats", "backoff_delay"]
