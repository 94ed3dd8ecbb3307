"""Page sizes and opaque keyset page tokens for the List methods.

A token is the URL-safe base64 of the last returned row's sort key ``(time, id)`` tagged with the
collection it belongs to. Keyset pagination (``WHERE (time, id) < (:t, :id)``) stays fast on deep
pages and never skips or repeats a row when new rows arrive between calls, unlike OFFSET.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from typing import Any

from headwater_server.errors import invalid_argument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# Tokens this module writes are about 100 characters; anything far longer is not one of them.
MAX_TOKEN_CHARACTERS = 512
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def page_size(value: int) -> int:
    """The effective page size of a checked request: 0 means the default.

    The range (0 to MAX_PAGE_SIZE) is checked by the application layer
    (:func:`headwater_server.application.checks.page_size`).
    """
    return value or DEFAULT_PAGE_SIZE


def encode_token(collection: str, sort_time: int, row_id: str) -> str:
    """An opaque token that resumes ``collection`` after the row ``(sort_time, row_id)``."""
    raw = json.dumps([collection, sort_time, row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def next_page_token(
    collection: str, rows: Sequence[Any], size: int, time_key: str = "create_time"
) -> str:
    """The token after ``rows[:size]``, or "" on the last page.

    List queries fetch ``size + 1`` rows: the extra row only says another page exists, and the
    token resumes after the last row returned (``rows[size - 1]``), so that row is not skipped.
    """
    if len(rows) <= size:
        return ""
    last = rows[size - 1]
    return encode_token(collection, getattr(last, time_key), last.id)


def decode_token(collection: str, token: str) -> tuple[int, str] | None:
    """The ``(time, id)`` a token resumes after, None for an empty token.

    A token comes back from the caller, so it is checked as strictly as any other input: its
    time must fit the 64-bit column it is compared with (a crafted 2**64 or ``true`` reached the
    database and failed there), and its id must be a UUID like every row id.

    Raises:
        ServiceError: INVALID_ARGUMENT when the token is malformed or from another List method.
    """
    if not token:
        return None
    try:
        if len(token) > MAX_TOKEN_CHARACTERS:
            raise ValueError("too long")
        padded = token + "=" * (-len(token) % 4)
        parts = json.loads(base64.urlsafe_b64decode(padded.encode()))
        kind, sort_time, row_id = parts
        if (
            kind != collection
            or type(sort_time) is not int
            or not INT64_MIN <= sort_time <= INT64_MAX
            or not isinstance(row_id, str)
        ):
            raise ValueError(kind)
        row_id = str(uuid.UUID(row_id))
    except (ValueError, TypeError, binascii.Error, UnicodeError, RecursionError):
        raise invalid_argument(
            "page_token",
            "is not a token returned by this List method; pass the next_page_token of the "
            "previous response unchanged, or leave it empty for the first page.",
        ) from None
    return sort_time, row_id
