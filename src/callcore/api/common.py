"""Helpers shared by the endpoint modules: required services, service errors → HTTP errors, clocks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

from callcore.acd.agent_state import InvalidTransition
from callcore.acd.conversation import ConversationError
from callcore.api.errors import ApiError, conflict
from callcore.api.services import NotFound, Rejected
from callcore.events import utcnow

T = TypeVar("T")


class Body(BaseModel):
    """Request bodies: unknown fields are errors (a typo must not be ignored silently)."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """Response bodies: every field is always present (the schema says so: defaults count as required)."""

    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)


def require(service: T | None, what: str) -> T:
    if service is None:
        raise ApiError(503, "service_unavailable", f"the {what} service is not available in this process")
    return service


def method(service: object, name: str, what: str) -> Callable[..., object]:
    """A service method that may not exist yet (501 until it does)."""
    fn = getattr(service, name, None)
    if fn is None:
        raise ApiError(501, "not_implemented", f"{what} is not implemented yet")
    return fn  # type: ignore[no-any-return]


@contextmanager
def service_errors() -> Iterator[None]:
    """Service refusals as 404/409 with the service's message."""
    try:
        yield
    except InvalidTransition as exc:
        raise conflict("invalid_transition", str(exc),
                       {"agent": exc.agent_id, "state": exc.state, "action": exc.event, "reason": exc.message}) from None
    except ConversationError as exc:
        raise conflict("rejected", str(exc)) from None
    except NotFound as exc:
        raise ApiError(404, "not_found", exc.message, exc.details) from None
    except Rejected as exc:
        raise conflict("rejected", exc.message, exc.details) from None


def wall_clock(now_service: float, t: float) -> datetime:
    """A time of the service's clock (loop seconds) as a UTC datetime."""
    return utcnow() - timedelta(seconds=max(0.0, now_service - t))
