"""Pagination of the control-plane API's lists: ``limit`` and an opaque ``cursor``.

Every list route answers ``{"items": [...], "next_cursor": "..." | null}``. A cursor is the
URL-safe base64 of a small JSON object (today the offset of the next item); clients pass it
back unchanged and never build one. A cursor that cannot be read answers 400.

Example:
    >>> page = paginate(lambda n: list(range(n)), limit=2, cursor=None)
    >>> page["items"], decode_cursor(page["next_cursor"])
    ([0, 1], 2)
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel

from plinth.errors import PlinthError

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "Cursor",
    "InvalidCursor",
    "Limit",
    "Page",
    "decode_cursor",
    "encode_cursor",
    "page_of",
    "paginate",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

#: The ``limit`` query parameter of every list route.
Limit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page (at most {MAX_LIMIT}).")
]
#: The ``cursor`` query parameter of every list route.
Cursor = Annotated[
    str | None,
    Query(max_length=200, description="The next_cursor of the previous page; omit for the first."),
]


class InvalidCursor(PlinthError):
    """A ``cursor`` that this server did not hand out (HTTP 400)."""

    status_code = 400


class Page(BaseModel):
    """One page of a list: its items and the cursor of the next page (null on the last)."""

    items: list[Any]
    next_cursor: str | None = None


def encode_cursor(offset: int) -> str:
    """The opaque cursor of the page starting at ``offset``.

    Example:
        >>> decode_cursor(encode_cursor(100))
        100
    """
    raw = json.dumps({"o": int(offset)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The offset a cursor stands for (0 for none); raise :class:`InvalidCursor` otherwise.

    Example:
        >>> decode_cursor(None)
        0
    """
    if not cursor:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        offset = data["o"]
    except (ValueError, UnicodeError, binascii.Error, KeyError, TypeError) as exc:
        raise InvalidCursor(
            "The cursor is not one this server handed out.",
            hint="Pass the next_cursor of the previous page unchanged, or omit it.",
        ) from exc
    if type(offset) is not int or not 0 <= offset <= 10**9:
        raise InvalidCursor(
            "The cursor is not one this server handed out.",
            hint="Pass the next_cursor of the previous page unchanged, or omit it.",
        )
    return offset


def page_of(items: Sequence[Any], offset: int, limit: int) -> dict[str, Any]:
    """A page from ``items`` fetched from ``offset`` with one extra to tell if more follow.

    Example:
        >>> page_of([5, 6, 7], 10, 2)["next_cursor"] == encode_cursor(12)
        True
    """
    more = len(items) > limit
    return {
        "items": list(items[:limit]),
        "next_cursor": encode_cursor(offset + limit) if more else None,
    }


def paginate(
    fetch: Callable[[int], Sequence[Any]],
    *,
    limit: int,
    cursor: str | None,
    convert: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """One page from a service that can return its first ``n`` items, newest first.

    ``fetch(n)`` returns at most ``n`` items; the page is items ``offset`` to
    ``offset + limit`` of them, converted with ``convert``.

    Example:
        >>> paginate(lambda n: "abcde"[:n], limit=2, cursor=encode_cursor(4))
        {'items': ['e'], 'next_cursor': None}
    """
    offset = decode_cursor(cursor)
    found = list(fetch(offset + limit + 1))[offset:]
    page = page_of(found, offset, limit)
    if convert is not None:
        page["items"] = [convert(item) for item in page["items"]]
    return page
