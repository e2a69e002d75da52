""""Call me now": a web page's visitor leaves a number and is called back when an agent is (about to be) free.

| endpoint | roles |
|---|---|
| ``POST /callbacks`` | integrator (the website's backend), supervisor |
| ``GET /callbacks/{callback_id}``, ``DELETE /callbacks/{callback_id}`` | integrator (its own), supervisor |

(admin may do everything.) A public page must call this through its own backend, never with a token in the
browser.

Abuse protection, in the order it is checked (a "call me now" endpoint must not become a toll-fraud or
harassment tool):

1. per client: ``callbacks.max_per_client_per_hour`` requests per API token (every request counts) → 429;
2. per visitor: ``max_per_requester_per_hour`` per ``requester`` (the visitor as the website knows them) → 429;
3. the number: valid (``phonenumbers``, read in ``default_region``), of an allowed line type (never premium-rate
   or shared-cost) and on the allow-list (``allowed_prefixes`` / ``allowed_countries``) → 422 / 403;
4. per number: ``max_per_number_per_day`` accepted requests in any 24 hours, in memory *and* in PostgreSQL (a
   restart does not reset it) → 429;
5. the global do-not-call list → 403 ``number_on_dnc``;
6. ``max_pending`` callbacks open in all → 503 ``callbacks_busy``.

Then the :class:`~callcore.api.outbound_services.CallbackScheduler` puts the number in line and says when it
expects to dial it; the answer promises that time plus ``promise_margin``.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal

import structlog
from pydantic import AwareDatetime, Field, StringConstraints, model_validator

from callcore.acd.web_callbacks import CallbackStoreUnavailable
from callcore.api.auth import Role
from callcore.api.callbacks_config import CallbacksSettings, DestinationRefused, check_destination
from callcore.api.campaigns import PhoneText, PlainText, outbound, outbound_errors, part
from callcore.api.common import Body, Out
from callcore.api.errors import ApiError, not_found
from callcore.api.outbound_services import CallbackScheduler, CallbackStatus, OutboundServices
from callcore.api.ratelimit import SlidingWindowLimiter, Verdict
from callcore.api.routing import ApiRequest, Reply, RouteTable

log = structlog.get_logger("callcore.api")

routes = RouteTable()

ROLES = (Role.integrator, Role.supervisor)
TAGS = ("callbacks",)
HOUR = 3600.0
DAY = 86_400.0

CallbackId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
ID = {"callback_id": CallbackId}
QueueName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]


class CallbackWindow(Body):
    from_: AwareDatetime | None = Field(None, alias="from", description="not before (ISO 8601 with an offset)")
    to: AwareDatetime | None = Field(None, description="not after: the callback expires then")

    @model_validator(mode="after")
    def _ordered(self) -> CallbackWindow:
        if self.from_ is not None and self.to is not None and self.to <= self.from_:
            raise ValueError("`to` must be later than `from`")
        return self


class CallbackContext(Body):
    """What the agent hears before the callee is connected (short: it is read out)."""

    page: str | None = Field(None, max_length=500, pattern=PlainText, description="the page the visitor was on")
    product: str | None = Field(None, max_length=100, pattern=PlainText)
    note: str | None = Field(None, max_length=500, pattern=PlainText)


class CallbackBody(Body):
    number: PhoneText = Field(description="the visitor's number: +31 6 12345678, 06-12345678 (read in the "
                                          "configured region), ...")
    window: CallbackWindow | None = Field(None, description="preferred window; absent: as soon as possible")
    context: CallbackContext = Field(default_factory=CallbackContext)
    queue: QueueName | None = Field(None, description="default: callbacks.queue")
    requester: str | None = Field(None, min_length=1, max_length=100, pattern=PlainText,
                                  description="the visitor as your backend knows them (IP address, session id): "
                                              "rate-limited per requester")


class CallbackCreated(Out):
    id: str
    status: Literal["waiting"]
    queue: str
    number: str = Field(description="E.164")
    position: int = Field(description="place in line (1: next)")
    promised_at: datetime = Field(description="we call by then: the queue's estimated wait plus a margin")
    not_before: datetime | None
    not_after: datetime | None


class CallbackOut(Out):
    id: str
    status: Literal["waiting", "dialing", "connected", "done", "failed", "cancelled", "expired"]
    queue: str
    number: str
    position: int | None = Field(description="place in line while waiting")
    estimated_at: datetime | None = Field(description="when it should be dialled, by the live estimate")
    created_at: datetime | None
    attempts: int


# -- abuse protection ------------------------------------------------------------------------------------------------


def _limiter(out: OutboundServices, scope: str, limit: int, window: float) -> SlidingWindowLimiter:
    key = f"callbacks:{scope}:{limit}:{window}"
    limiter = out.limiters.get(key)
    if limiter is None:
        limiter = out.limiters[key] = SlidingWindowLimiter(limit, window, clock=out.monotonic)
    return limiter  # type: ignore[no-any-return]


def rate_limited(scope: str, what: str, limit: int, window: float, retry_after: float) -> ApiError:
    seconds = max(1, math.ceil(retry_after))
    span = "hour" if window == HOUR else "24 hours" if window == DAY else f"{window:g} s"
    return ApiError(429, "rate_limited", f"too many callback requests {what}: at most {limit} per {span}; "
                                         f"retry in {seconds} s",
                    {"scope": scope, "limit": limit, "window_seconds": window, "retry_after": seconds},
                    headers={"Retry-After": str(seconds)})


def _take(out: OutboundServices, scope: str, what: str, key: str, limit: int, window: float
          ) -> tuple[SlidingWindowLimiter, str, Verdict]:
    limiter = _limiter(out, scope, limit, window)
    verdict = limiter.acquire(key)
    if not verdict.allowed:
        log.info("callback request refused", reason="rate_limited", scope=scope)
        raise rate_limited(scope, what, limit, window, verdict.retry_after)
    return limiter, key, verdict


def refused(code: str, message: str, details: object = None) -> ApiError:
    log.info("callback request refused", reason=code)
    return ApiError(403, code, message, details)


def callback_number(raw: str, settings: CallbacksSettings) -> str:
    """E.164 of an allowed destination, or 422 (not a number) / 403 (not allowed)."""
    try:
        return check_destination(raw, settings)
    except DestinationRefused as exc:
        if exc.code == "invalid_number":
            raise _invalid_number(raw, exc.message, settings) from None
        raise refused(exc.code, exc.message, exc.details) from None


def _invalid_number(raw: str, reason: str, settings: CallbacksSettings) -> ApiError:
    hint = "" if settings.default_region or raw.strip().startswith("+") else \
        " (give it with its country code, e.g. +31...)"
    return ApiError(422, "invalid_number", f"body.number: {reason}{hint}",
                    [{"loc": ["body", "number"], "message": reason, "type": "invalid_number"}])


def _queue(req: ApiRequest, asked: str | None, settings: CallbacksSettings) -> str:
    queue = asked or settings.queue
    if queue is None:
        raise ApiError(422, "validation_error", "body.queue: no queue given and callbacks.queue is not set",
                       [{"loc": ["body", "queue"], "message": "required (no default queue)", "type": "missing"}])
    allowed = settings.queues()
    if queue not in allowed:
        raise ApiError(422, "queue_not_allowed", f"body.queue: callbacks may go to {', '.join(allowed) or 'no queue'}"
                                                 f", not {queue!r}",
                       [{"loc": ["body", "queue"], "message": "not an allowed queue", "type": "queue_not_allowed"}])
    acd = req.services.acd
    if acd is not None and queue not in acd.config.queues:
        raise ApiError(422, "unknown_queue", f"body.queue: there is no queue {queue!r}",
                       [{"loc": ["body", "queue"], "message": "unknown queue", "type": "unknown_queue"}])
    return queue


def _window(window: CallbackWindow | None, settings: CallbacksSettings, now: datetime
            ) -> tuple[datetime | None, datetime | None]:
    if window is None:
        return None, None
    not_before = window.from_.astimezone(timezone.utc) if window.from_ is not None else None
    not_after = window.to.astimezone(timezone.utc) if window.to is not None else None
    if not_after is not None and not_after <= now:
        raise ApiError(422, "validation_error", "body.window.to: the window is over already",
                       [{"loc": ["body", "window", "to"], "message": "in the past", "type": "past"}])
    horizon = now + timedelta(days=settings.max_days_ahead)
    if not_before is not None and not_before > horizon:
        raise ApiError(422, "validation_error",
                       f"body.window.from: at most {settings.max_days_ahead:g} days ahead",
                       [{"loc": ["body", "window", "from"], "message": "too far ahead", "type": "too_far"}])
    if not_before is not None and not_before <= now:
        not_before = None  # already open: as soon as possible
    return not_before, not_after


def promise(estimate: datetime, margin: float, not_before: datetime | None, not_after: datetime | None
            ) -> datetime | None:
    """The time we promise: the estimate plus the margin, rounded up to the minute, inside the window. None: the
    estimate itself is after the window's end (we cannot promise within it)."""
    if not_after is not None and estimate > not_after:
        return None
    promised = estimate + timedelta(seconds=margin)
    if promised.second or promised.microsecond:
        promised = promised.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if not_before is not None and promised < not_before:
        promised = not_before
    if not_after is not None and promised > not_after:
        promised = not_after
    return promised


async def _check_quota(out: OutboundServices, number: str, settings: CallbacksSettings, now: datetime) -> None:
    """The per-number daily limit as PostgreSQL remembers it (a restart forgets the in-memory one)."""
    if out.quota is None:
        return
    try:
        recent = await out.quota.recent(number, now - timedelta(seconds=DAY))
    except Exception:  # noqa: BLE001 - the database is away: refuse rather than let the limit go unchecked
        log.exception("callback quota cannot be read")
        raise ApiError(503, "service_unavailable", "callback limits cannot be checked right now; retry") from None
    limit = settings.max_per_number_per_day
    if len(recent) >= limit:
        oldest = recent[len(recent) - limit]
        retry = (oldest + timedelta(seconds=DAY) - now).total_seconds()
        log.info("callback request refused", reason="rate_limited", scope="number")
        raise rate_limited("number", "for this number", limit, DAY, max(1.0, retry))


async def _check_dnc(out: OutboundServices, number: str) -> None:
    store = part(out.dnc, "the do-not-call list (callbacks are checked against it)")
    try:
        entries = await store.check(number, region="ZZ", campaign=None)
    except Exception:  # noqa: BLE001 - never call a number we could not check
        log.exception("do-not-call list cannot be read")
        raise ApiError(503, "service_unavailable", "the do-not-call list cannot be checked right now; retry") from None
    if entries:
        raise refused("number_on_dnc", f"{number} is on the do-not-call list: it is not called back",
                      {"number": number})


# -- endpoints -----------------------------------------------------------------------------------------------------------


def _scheduler(out: OutboundServices) -> CallbackScheduler:
    scheduler: CallbackScheduler = part(out.callbacks, "callbacks (the scheduler)")
    return scheduler


@routes.post("/callbacks", summary="Ask to be called back (\"call me now\")", tags=TAGS, roles=ROLES,
             body=CallbackBody, response=CallbackCreated, status=201, errors=(403, 409, 429, 501, 503),
             description="For a website's backend (never call it from a browser with a token in the page). The "
                         "number is normalised to E.164 and must be allowed (line type, `callbacks.allowed_prefixes`"
                         " / `allowed_countries`: 403 `destination_not_allowed`) and not on the do-not-call list "
                         "(403 `number_on_dnc`). Rate limits per token, per `requester` and per number (429 "
                         "`rate_limited` with `Retry-After`). The callback keeps a place in the queue's line; the "
                         "answer promises when we call (the estimated wait plus a margin, inside `window`). 409 "
                         "when nobody can call back (no agent, closed) or not within the window.")
async def request_callback(req: ApiRequest) -> Reply:
    out = outbound(req)
    scheduler = _scheduler(out)
    settings = out.callback_settings
    if not settings.enabled:
        raise ApiError(503, "callbacks_disabled", "callbacks are switched off (callbacks.enabled)")
    body: CallbackBody = req.body
    client = req.principal.name if req.principal is not None else "-"
    _take(out, "client", "from this client", client, settings.max_per_client_per_hour, HOUR)
    if body.requester is not None:
        _take(out, "requester", "from this requester", f"{client}\x00{body.requester}",
              settings.max_per_requester_per_hour, HOUR)
    number = callback_number(body.number, settings)
    queue = _queue(req, body.queue, settings)
    now = out.clock()
    not_before, not_after = _window(body.window, settings, now)
    limiter, key, hit = _take(out, "number", "for this number", number, settings.max_per_number_per_day, DAY)
    accepted = False
    try:
        await _check_quota(out, number, settings, now)
        await _check_dnc(out, number)
        if scheduler.pending() >= settings.max_pending:
            log.warning("callback request refused", reason="callbacks_busy", pending=settings.max_pending)
            raise ApiError(503, "callbacks_busy", "too many callbacks are waiting; try again later",
                           {"max_pending": settings.max_pending}, headers={"Retry-After": "60"})
        context = {k: v for k, v in body.context.model_dump().items() if v}
        try:
            with outbound_errors():
                ticket = await scheduler.request(number, queue, context, not_before, not_after, requested_by=client)
        except CallbackStoreUnavailable:
            raise ApiError(503, "service_unavailable", "the callback cannot be stored right now; retry",
                           headers={"Retry-After": "30"}) from None
        promised = promise(ticket.promised_at, settings.promise_margin, not_before, not_after)
        if promised is None:
            with outbound_errors():
                await scheduler.cancel(ticket.id)
            raise ApiError(409, "window_unavailable",
                           f"we cannot call back before {not_after.isoformat() if not_after else ''}: the earliest "
                           f"estimate is {ticket.promised_at.isoformat()}",
                           {"estimated_at": ticket.promised_at.isoformat()})
        # A durable scheduler keeps the promise with the request, so a restart continues with it.
        record_promise = getattr(scheduler, "record_promise", None)
        if record_promise is not None:
            await record_promise(ticket.id, promised)
        accepted = True
    finally:
        if not accepted:
            limiter.release(key, hit)
    if out.quota is not None:
        try:
            await out.quota.record(number, ticket.id, now)
        except Exception:  # noqa: BLE001 - the callback is scheduled: do not fail the request for the counter
            log.exception("callback quota not recorded", callback=ticket.id)
    log.info("callback requested", callback=ticket.id, queue=queue, position=ticket.position, client=client)
    return Reply(CallbackCreated(id=ticket.id, status="waiting", queue=queue, number=number, position=ticket.position,
                                 promised_at=promised, not_before=not_before, not_after=not_after), status=201)


def _out(s: CallbackStatus) -> CallbackOut:
    return CallbackOut(id=s.id, status=s.status, queue=s.queue, number=s.number, position=s.position,
                       estimated_at=s.estimated_at, created_at=s.created_at, attempts=s.attempts)


async def _own(req: ApiRequest, scheduler: CallbackScheduler, callback_id: str) -> CallbackStatus:
    """The callback, if this token may see it: an integrator only its own (others: 404, as if unknown)."""
    with outbound_errors():
        status = await scheduler.status(callback_id)
    p = req.principal
    if p is not None and p.role is Role.integrator and status.requested_by and status.requested_by != p.name:
        raise not_found("callback", callback_id)
    return status


@routes.get("/callbacks/{callback_id}", summary="A callback's status", tags=TAGS, roles=ROLES,
            response=CallbackOut, path_params=ID, errors=(404, 501),
            description="waiting (with its place in line and the live estimate), dialing, connected, done, "
                        "failed (not reached), cancelled or expired (the window passed). An integrator sees the "
                        "callbacks it asked for.")
async def get_callback(req: ApiRequest) -> CallbackOut:
    scheduler = _scheduler(outbound(req))
    return _out(await _own(req, scheduler, req.path["callback_id"]))


@routes.delete("/callbacks/{callback_id}", summary="Cancel a callback", tags=TAGS, roles=ROLES,
               response=CallbackOut, path_params=ID, errors=(404, 409, 501),
               description="Takes a waiting callback out of line. 409 once it is being dialled or is over.")
async def cancel_callback(req: ApiRequest) -> CallbackOut:
    scheduler = _scheduler(outbound(req))
    callback_id = req.path["callback_id"]
    await _own(req, scheduler, callback_id)
    with outbound_errors():
        status = await scheduler.cancel(callback_id)
    log.info("callback cancelled", callback=callback_id)
    return _out(status)


__all__ = ["CallbackBody", "callback_number", "promise", "routes"]
