"""Pagination of list endpoints: ``?limit=N&cursor=C``; the response has ``items`` and ``next``.

``next`` is the path (with query) of the following page, or null on the last page. The cursor is opaque to
clients: it encodes the sort key of the last item returned, so a page never repeats or skips an item that
stayed in the list while other items came and went (live lists change between requests).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from callcore.api.errors import bad_request

if TYPE_CHECKING:
    from callcore.api.routing import ApiRequest

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description=f"items per page (1-{MAX_LIMIT})")
    cursor: str | None = Field(None, max_length=1024, description="the `next` link's cursor; absent: first page")


def encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(f"k1:{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith("k1:"):
        raise bad_request("invalid_cursor", "cursor is not one this server gave out (use the `next` link as is)")
    return text[3:]


def paginate(items: Sequence[T], key: Callable[[T], str], query: PageQuery,
             req: ApiRequest | None = None) -> tuple[list[T], str | None]:
    """One page of ``items`` ordered by ``key`` (unique per item) and the link to the next page."""
    ordered = sorted(items, key=key)
    if query.cursor is not None:
        after = decode_cursor(query.cursor)
        ordered = [item for item in ordered if key(item) > after]
    page = ordered[: query.limit]
    if len(ordered) <= query.limit:
        return page, None
    cursor = encode_cursor(key(page[-1]))
    return page, (req.url_with(cursor=cursor, limit=query.limit) if req is not None else cursor)


__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "PageQuery", "decode_cursor", "encode_cursor", "paginate"]
